"""TrainConfig: every hyperparameter and setting of a training run, in one place.

A run is defined by its config alone (plus the data it reads): the config is saved
as `config.json` in the run directory and its hash is part of the run id.  The
same keys are accepted from a JSON file (`--config FILE`) and from the command line;
the command line wins.  Each field's metadata holds its `--help` text.

No TensorFlow at import time: `--help` of `trainer` and `tuning` builds its options
from this module and must answer at once.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from typing import Any, Optional, Sequence

from trainer.errors import UserError

BALANCING_MODES = ("sampling", "weights", "none")
FRONT_ENDS = ("spectral", "filterbank", "raw")  # modules of trainer/frontends/
SLOW_CHANNEL_MODES = ("rhythms", "relative", "levels", "none")  # frontends/slow_channels.py
BAND_POWER_MODES = ("relative", "absolute")  # see trainer/frontends/layers.py:BandLogPower
PRECISIONS = ("fp32", "bf16", "fp16")  # see trainer/model.py:PRECISION_POLICIES
OPTIONAL_INTS = ("window", "frame_span")  # integer fields that may be None ("derived", "all")


class ConfigError(UserError):
    """A config key or value (from --config FILE or an option) is unknown or invalid."""


def _option(default: Any, help: str, choices: Optional[Sequence[str]] = None,
            shown_default: Optional[str] = None) -> Any:
    """A config field with the help text of its command-line option."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "shown_default": shown_default})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Model: a front end turns the window into a sequence of feature frames, then
    # stacked LSTMs and a Dense layer of logits (trainer/model.py).
    front_end: str = _option("spectral", "what turns a window into feature frames "
                             "(trainer/frontends/)", choices=FRONT_ENDS)
    frame: int = _option(64, "rows per frame (spectral, filterbank)")
    hop: int = _option(32, "rows between frames (spectral, filterbank)")
    filters: int = _option(24, "filterbank: learned (spatial, temporal) filter pairs")
    band_power: str = _option("relative", "spectral: band power relative to each channel's "
                              "window mean, or absolute", choices=BAND_POWER_MODES)
    slow_channels: str = _option("rhythms", "how the slow channels ecg, r, gsr are fed: "
                                 "relative to the window plus heart and breathing rhythms "
                                 "and each one's activity and pace over the window, only "
                                 "relative to the window, as levels, or not at all",
                                 choices=SLOW_CHANNEL_MODES)
    frame_span: Optional[int] = _option(256, "spectral, filterbank: rows at the window's end "
                                        "that the frames cover (at most the window: give the "
                                        "window's rows for all of it); the whole window still "
                                        "sets the slow channels' mean, rhythms and pace")
    feature_dropout: float = _option(0.2, "probability of dropping a whole feature of a "
                                     "window (spectral, filterbank), in [0, 1)")
    lstm_units: tuple[int, ...] = _option((64,), "units of each stacked LSTM layer, "
                                          "comma-separated (e.g. 128,64)")
    pool: int = _option(4, "raw front end: average-pool this many samples")
    dropout: float = _option(0.2, "input dropout of each LSTM layer, in [0, 1)")
    window: Optional[int] = _option(None, "rows per window, at most the data's",
                                    shown_default="the data's window (its manifest.json)")
    precision: str = _option("fp32", "compute type of the LSTMs: float32, or mixed precision "
                             "with bfloat16 or float16 (fp16 with dynamic loss scaling)",
                             choices=PRECISIONS)
    # Optimisation.
    learning_rate: float = _option(2e-4, "Adam(W) learning rate")
    weight_decay: float = _option(0.0, "AdamW's decoupled weight decay (0: plain Adam)")
    global_batch_size: int = _option(256, "windows per step, split evenly over the replicas")
    epochs: int = _option(100, "most epochs to train (an epoch = --steps-per-epoch steps, "
                          "then validation); early stopping usually ends a run first")
    steps_per_epoch: int = _option(25, "training steps between validations")
    patience: int = _option(8, "epochs without a better balanced validation log loss "
                            "before training stops (0: never stop early)")
    label_smoothing: float = _option(0.1, "share of each training label spread evenly over the "
                                     "classes, in [0, 1): a state shows in the signals only "
                                     "after it ramps in, so labels near a change are uncertain "
                                     "(0: off)")
    temperature_scaling: bool = _option(True, "fit a temperature on the validation split "
                                        "(true or false)")
    # Augmentation of training windows (trainer/augment.py; 0 turns each off).
    augment_gain: float = _option(0.2, "augmentation: sd of the log of a per-channel gain "
                                  "(0: off)")
    augment_shift: int = _option(32, "augmentation: most rows a window is shifted back from "
                                 "its labelled end (0: off)")
    augment_channel_dropout: float = _option(0.1, "augmentation: probability that a channel "
                                             "is zeroed (0: off)")
    augment_noise: float = _option(0.05, "augmentation: sd of added Gaussian noise, in scaled "
                                   "units (0: off)")
    # Data.
    balancing: str = _option("sampling", "how classes are balanced: sampling (draw every class "
                             "equally often), weights (inverse-frequency loss weights), none",
                             choices=BALANCING_MODES)
    sampling_density: float = _option(0.5, "share of the rarest class's windows drawn per "
                                      "pass, in (0, 1]")
    shuffle_windows: int = _option(4096, "shuffle buffer of training windows")
    shuffle_groups: int = _option(2048, "shuffle buffer of groups of 8 window ends")
    cycle_length: int = _option(4, "shards read in parallel")
    valid_batch_size: int = _option(512, "windows per validation batch")
    device_data_mb: int = _option(2048, "hold the training split on each device and cut the "
                                  "windows there when it needs at most this many MiB per device "
                                  "(0: always stream windows from the host)")
    # Run.
    seed: int = _option(0, "seed of the weights, the input pipeline and augmentation "
                        "(same seed and data: same run)")
    checkpoint_every_steps: int = _option(50, "steps between checkpoints (a run resumes from "
                                          "its last one)")
    steps_per_execution: int = _option(10, "training steps per host round trip (run in one "
                                       "traced call)")
    summary_every_steps: int = _option(10, "steps between TensorBoard training summaries")
    devices: tuple[str, ...] = _option((), "comma-separated TensorFlow devices to mirror the "
                                       "model over, e.g. /gpu:0,/gpu:1",
                                       shown_default="every visible GPU, else the CPU")

    def __post_init__(self) -> None:
        for name, choices in (("balancing", BALANCING_MODES), ("front_end", FRONT_ENDS),
                              ("slow_channels", SLOW_CHANNEL_MODES),
                              ("band_power", BAND_POWER_MODES), ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} {getattr(self, name)!r} is not one of {choices}")
        if not self.lstm_units or min(self.lstm_units) < 1:
            raise ConfigError(f"lstm_units {self.lstm_units!r}: need >= 1 layer of >= 1 unit")
        for name in ("dropout", "feature_dropout", "augment_channel_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} {getattr(self, name)} outside [0, 1)")
        for name in ("weight_decay", "augment_gain", "augment_noise", "augment_shift", "patience",
                     "device_data_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.sampling_density <= 1.0:
            raise ConfigError(f"sampling_density {self.sampling_density} outside (0, 1]")
        for name in ("pool", "global_batch_size", "epochs", "steps_per_epoch",
                     "checkpoint_every_steps", "summary_every_steps", "cycle_length", "shuffle_groups",
                     "shuffle_windows", "valid_batch_size", "frame", "hop", "filters",
                     "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.front_end != "raw" and (self.frame_span or self.frame) < self.frame:
            raise ConfigError(f"frame_span {self.frame_span} is shorter than a frame "
                              f"({self.frame})")
        if self.window is not None:
            if self.front_end == "raw" and self.window % self.pool:
                raise ConfigError(f"window {self.window} is not a multiple of pool {self.pool}")
            if self.front_end != "raw" and self.window < self.frame:
                raise ConfigError(f"window {self.window} is shorter than a frame ({self.frame})")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def digest(self) -> str:
        """Short stable hash of the config (part of the run id)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """The config of `values` (JSON or command-line values); errors name `source`."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown config keys {unknown}; known: {sorted(known)}")
        try:
            return cls(**{k: _coerce(known[k], v) for k, v in values.items()})
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str) -> None:
        import tensorflow as tf  # not at import time: see the module docstring

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str) -> "TrainConfig":
        import tensorflow as tf  # not at import time: see the module docstring

        with tf.io.gfile.GFile(path) as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(values, source=path)


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turns JSON or command-line values into the field's type."""
    try:
        return _coerced(field, value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field.name}: {value!r} is not {_expected(field)}") from None


def _expected(field: dataclasses.Field) -> str:
    if field.name == "lstm_units":
        return "a comma-separated list of positive integers"
    if isinstance(field.default, bool):
        return "true or false"
    return "a number" if isinstance(field.default, float) else "an integer"


def _coerced(field: dataclasses.Field, value: Any) -> Any:
    if field.name in ("lstm_units", "devices"):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        cast = int if field.name == "lstm_units" else str
        return tuple(cast(v) for v in value)
    if value is None:
        return None
    if isinstance(field.default, str):
        return str(value)
    if isinstance(field.default, bool):
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if isinstance(field.default, float):
        return float(value)
    if isinstance(field.default, int) or field.name in OPTIONAL_INTS:
        return int(value)
    return value


def parse_bool(text: str) -> bool:
    """An option's true or false (argparse reports anything else)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return text.lower() == "true"


def _option_type(field: dataclasses.Field) -> tuple[Any, str]:
    """The argparse type and metavar of a field's option (lists stay text: _coerce
    splits them)."""
    if field.name in OPTIONAL_INTS:
        return int, "N"
    return {bool: (parse_bool, "true|false"), int: (int, "N"), float: (float, "X")}.get(
        type(field.default), (str, "LIST" if isinstance(field.default, tuple) else "TEXT"))


def add_config_arguments(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """Adds `--config FILE` and one `--<key>` option per TrainConfig field not excluded."""
    parser.add_argument("--config", metavar="FILE",
                        help="JSON file of config keys (e.g. a tuning report's best_config.json);"
                             " the options below override it. Default: none")
    for field in dataclasses.fields(TrainConfig):
        if field.name in exclude:
            continue
        default, choices = field.default, field.metadata["choices"]
        shown = field.metadata["shown_default"] or (
            ",".join(map(str, default)) if isinstance(default, tuple)
            else str(default).lower() if isinstance(default, bool) else default)
        text = field.metadata["help"]
        if choices:
            text += f"; choices: {', '.join(choices)}"
        kind, metavar = _option_type(field)
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, default=None,
                            type=kind, choices=choices, metavar=None if choices else metavar,
                            help=f"{text}. Default: {shown}".replace("%", "%%"))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config file's values (if any), overridden by the options given."""
    values: dict[str, Any] = {}
    if args.config:
        import tensorflow as tf

        if not tf.io.gfile.exists(args.config):
            raise ConfigError(f"--config {args.config}: no such file")
        values.update(TrainConfig.load(args.config).to_dict())
    for field in dataclasses.fields(TrainConfig):
        given = getattr(args, field.name, None)
        if given is not None:
            values[field.name] = given
    return TrainConfig.from_dict(values, source=args.config or "command line")
