"""TrainConfig: every hyperparameter and setting of a training run, in one place.

A run is defined by its config alone (plus the data it reads): the config is saved
as `config.json` in the run directory and its hash is part of the run id.  The
same keys are accepted from a JSON file (`--config FILE`) and from the command line;
the command line wins.  Each field's metadata holds its `--help` text and, for a number,
its allowed range (a Range): the option refuses a value outside it, and so does
TrainConfig itself (for a --config file, Python callers and tuning's base config),
both naming the option and the range; NaN and infinity are never allowed.

No TensorFlow at import time: `--help` of `trainer` and `tuning` builds its options
from this module and must answer at once.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import numbers
from typing import Any, Callable, Optional, Sequence

from trainer.shared.errors import UserError

BALANCING_MODES = ("sampling", "weights", "none")
FRONT_ENDS = ("context", "spectral", "filterbank", "raw")  # modules of trainer/model/frontends/
SLOW_CHANNEL_MODES = ("rhythms", "relative", "levels", "none")  # model/frontends/slow_channels.py
BAND_POWER_MODES = ("relative", "absolute")  # see trainer/model/frontends/layers.py:BandLogPower
PRECISIONS = ("fp32", "bf16", "fp16")  # see trainer/model/network.py:PRECISION_POLICIES
OPTIONAL_INTS = ("window", "frame_span")  # integer fields that may be None ("derived", "all")


class ConfigError(UserError):
    """A config key or value (from --config FILE or an option) is unknown or invalid."""


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number may take: from `low` to `high` (None: unbounded), each end
    included unless open; a float must also be finite (NaN and infinity never are).

    Declared once per numeric option (TrainConfig's fields, tuning's options): the
    option's argparse type (`number_type`) and the dataclass both check it, and say
    it in the same words (`describe`)."""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            return False  # NaN, inf (numpy's floats too)
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, kind: type = float) -> str:
        """E.g. "a finite number > 0", "a number in [0, 1)", "an integer >= 1"."""
        what = "an integer" if kind is int else "a number"
        if self.low is not None and self.high is not None:
            return (f"{what} in {'(' if self.low_open else '['}{_bound(self.low)}, "
                    f"{_bound(self.high)}{')' if self.high_open else ']'}")
        if kind is not int:
            what = "a finite number"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_bound(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_bound(self.high)}"
        return what


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


POSITIVE = Range(0, low_open=True)            # (0, inf), finite
NON_NEGATIVE = Range(0)                       # [0, inf), finite
SHARE = Range(0, 1, high_open=True)           # [0, 1): probabilities that must leave some
AT_LEAST_ONE = Range(1)
SEEDS = Range(0, 2**31 - 1)                   # what every seeded library takes, also seed + 1


def number_type(kind: type, allowed: Range) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` (int or float) within `allowed`; anything
    else is refused as "'TEXT' is not <allowed.describe(kind)>"."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed.describe(kind)}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def _option(default: Any, help: str, choices: Optional[Sequence[str]] = None,
            shown_default: Optional[str] = None, allowed: Optional[Range] = None) -> Any:
    """A config field with the help text of its command-line option and, for a
    number, its allowed range (checked by the option and by TrainConfig itself)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "shown_default": shown_default,
        "allowed": allowed})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Model: a front end turns the window into a sequence of feature frames, then
    # stacked LSTMs and a Dense layer of logits (trainer/model/network.py).
    front_end: str = _option("spectral", "what turns a window into feature frames "
                             "(trainer/model/frontends/)", choices=FRONT_ENDS)
    frame: int = _option(64, "rows per frame (context, spectral, filterbank)", allowed=AT_LEAST_ONE)
    hop: int = _option(32, "rows between frames (context, spectral, filterbank)", allowed=AT_LEAST_ONE)
    filters: int = _option(24, "filterbank: learned (spatial, temporal) filter pairs",
                           allowed=AT_LEAST_ONE)
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
                                        "sets the slow channels' mean, rhythms and pace",
                                        allowed=AT_LEAST_ONE)
    feature_dropout: float = _option(0.2, "probability of dropping a whole feature of a "
                                     "window (spectral, filterbank), in [0, 1)", allowed=SHARE)
    lstm_units: tuple[int, ...] = _option((64,), "units of each stacked LSTM layer, "
                                          "comma-separated (e.g. 128,64)")
    pool: int = _option(4, "raw front end: average-pool this many samples", allowed=AT_LEAST_ONE)
    dropout: float = _option(0.2, "input dropout of each LSTM layer, in [0, 1)", allowed=SHARE)
    window: Optional[int] = _option(None, "rows per window, at most the data's",
                                    shown_default="the data's window (its manifest.json)",
                                    allowed=AT_LEAST_ONE)
    precision: str = _option("fp32", "compute type of the LSTMs: float32, or mixed precision "
                             "with bfloat16 or float16 (fp16 with dynamic loss scaling)",
                             choices=PRECISIONS)
    # Optimisation.
    learning_rate: float = _option(2e-4, "Adam(W) learning rate", allowed=POSITIVE)
    weight_decay: float = _option(0.0, "AdamW's decoupled weight decay (0: plain Adam)",
                                  allowed=NON_NEGATIVE)
    global_batch_size: int = _option(256, "windows per step, split evenly over the replicas",
                                     allowed=AT_LEAST_ONE)
    epochs: int = _option(100, "most epochs to train (an epoch = --steps-per-epoch steps, "
                          "then validation); early stopping usually ends a run first",
                          allowed=AT_LEAST_ONE)
    steps_per_epoch: int = _option(25, "training steps between validations", allowed=AT_LEAST_ONE)
    patience: int = _option(8, "epochs without a better balanced validation log loss "
                            "before training stops (0: never stop early)", allowed=NON_NEGATIVE)
    label_smoothing: float = _option(0.1, "share of each training label spread evenly over the "
                                     "classes, in [0, 1): a state shows in the signals only "
                                     "after it ramps in, so labels near a change are uncertain "
                                     "(0: off)", allowed=SHARE)
    temperature_scaling: bool = _option(True, "fit a temperature on the validation split "
                                        "(true or false)")
    # Augmentation of training windows (trainer/model/augment.py; 0 turns each off).
    augment_gain: float = _option(0.2, "augmentation: sd of the log of a per-channel gain "
                                  "(0: off)", allowed=NON_NEGATIVE)
    augment_shift: int = _option(32, "augmentation: most rows a window is shifted back from "
                                 "its labelled end (0: off)", allowed=NON_NEGATIVE)
    augment_channel_dropout: float = _option(0.1, "augmentation: probability that a channel "
                                             "is zeroed (0: off)", allowed=SHARE)
    augment_noise: float = _option(0.05, "augmentation: sd of added Gaussian noise, in scaled "
                                   "units (0: off)", allowed=NON_NEGATIVE)
    # Data.
    balancing: str = _option("sampling", "how classes are balanced: sampling (draw every class "
                             "equally often), weights (inverse-frequency loss weights), none",
                             choices=BALANCING_MODES)
    sampling_density: float = _option(0.5, "share of the rarest class's windows drawn per "
                                      "pass, in (0, 1]", allowed=Range(0, 1, low_open=True))
    shuffle_windows: int = _option(4096, "shuffle buffer of training windows",
                                   allowed=AT_LEAST_ONE)
    shuffle_groups: int = _option(2048, "shuffle buffer of groups of 8 window ends",
                                  allowed=AT_LEAST_ONE)
    cycle_length: int = _option(4, "shards read in parallel", allowed=AT_LEAST_ONE)
    valid_batch_size: int = _option(512, "windows per validation batch", allowed=AT_LEAST_ONE)
    valid_windows_per_class: int = _option(2000, "validation windows per class scored after "
                                           "every epoch (the early-stopping signal and the "
                                           "best epoch's choice): a fixed subsample of the "
                                           "balanced validation split, drawn with --seed; the "
                                           "exported epoch is scored and calibrated on the whole "
                                           "split (0: the whole split every epoch)",
                                           allowed=NON_NEGATIVE)
    device_data_mb: int = _option(2048, "hold the training split on each device and cut the "
                                  "windows there when it needs at most this many MiB per device "
                                  "(0: always stream windows from the host)", allowed=NON_NEGATIVE)
    # Run.
    seed: int = _option(0, "seed of the weights, the input pipeline and augmentation "
                        "(same seed and data: same run)", allowed=SEEDS)
    checkpoint_every_steps: int = _option(50, "steps between checkpoints (a run resumes from "
                                          "its last one)", allowed=AT_LEAST_ONE)
    steps_per_execution: int = _option(10, "training steps per host round trip (run in one "
                                       "traced call)", allowed=AT_LEAST_ONE)
    summary_every_steps: int = _option(10, "steps between TensorBoard training summaries",
                                       allowed=AT_LEAST_ONE)
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
            raise ConfigError(f"lstm_units {self.lstm_units!r}: need >= 1 layer of >= 1 unit "
                              "(option --lstm-units)")
        for field in dataclasses.fields(self):
            allowed = field.metadata["allowed"]
            value = getattr(self, field.name)
            if allowed is None or (value is None and field.default is None):
                continue
            kind = number_kind(field)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or (kind is int and not isinstance(value, numbers.Integral))
                    or value not in allowed):
                shown = value.item() if hasattr(value, "item") else value  # numpy scalars
                raise ConfigError(f"{field.name} {shown!r} outside the range of "
                                  f"{option_name(field.name)}: {allowed.describe(kind)}")
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


def option_name(key: str) -> str:
    """The command-line option of a config key: `learning_rate` -> `--learning-rate`."""
    return "--" + key.replace("_", "-")


def number_kind(field: dataclasses.Field) -> type:
    """int or float: the type of a numeric field's values."""
    return int if field.name in OPTIONAL_INTS or type(field.default) is int else float


def field_range(key: str) -> Range:
    """The allowed range of a numeric TrainConfig key (tuning's ranges reuse them)."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}[key].metadata["allowed"]


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turns JSON or command-line values into the field's type."""
    try:
        return _coerced(field, value)
    except (TypeError, ValueError, OverflowError):
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
        if isinstance(value, float) and not value.is_integer():  # 2.5, inf, nan: not 2
            raise ValueError(value)
        return int(value)
    return value


def parse_bool(text: str) -> bool:
    """An option's true or false (argparse reports anything else)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return text.lower() == "true"


def _option_type(field: dataclasses.Field) -> tuple[Any, str]:
    """The argparse type and metavar of a field's option (lists stay text: _coerce
    splits them); a number's type refuses what its range does not allow."""
    if field.metadata["allowed"] is not None:
        kind = number_kind(field)
        return number_type(kind, field.metadata["allowed"]), "N" if kind is int else "X"
    return {bool: (parse_bool, "true|false")}.get(
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
        parser.add_argument(option_name(field.name), dest=field.name, default=None,
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
