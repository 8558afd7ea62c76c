"""TrainConfig: every hyperparameter and setting of a training run, in one place.

A run is defined by its config alone (plus the data it reads): the config is saved
as `config.json` in the run directory and its hash is part of the run id.  The
same keys are accepted from a JSON file (`--config FILE`) and from the command line;
the command line wins.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from typing import Any, Optional, Sequence

import tensorflow as tf

BALANCING_MODES = ("sampling", "weights", "none")
FRONT_ENDS = ("spectral", "filterbank", "raw")  # modules of trainer/frontends/
SLOW_CHANNEL_MODES = ("relative", "levels", "none")  # see trainer/frontends/slow_channels.py
BAND_POWER_MODES = ("relative", "absolute")  # see trainer/frontends/layers.py:BandLogPower


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Model: a front end turns the window into a sequence of feature frames, then
    # stacked LSTMs and a Dense layer of logits (trainer/model.py).
    front_end: str = "spectral"   # spectral | filterbank | raw (trainer/frontends/)
    frame: int = 64            # rows per frame (spectral, filterbank); raw: the pool size
    hop: int = 32              # rows between frames (spectral, filterbank)
    filters: int = 24          # filterbank: learned (spatial, temporal) filter pairs
    band_power: str = "relative"  # spectral: relative (to each channel's window mean) | absolute
    slow_channels: str = "relative"  # ecg, r, gsr: relative | levels | none
    feature_dropout: float = 0.2  # drops whole features of a window (spectral, filterbank)
    lstm_units: tuple[int, ...] = (64,)  # units of each stacked LSTM layer
    pool: int = 4              # raw front end: average-pool this many samples
    dropout: float = 0.2       # input dropout of each LSTM layer (cuDNN-compatible)
    window: Optional[int] = None  # rows per window; None = the manifest's window
    # Optimisation.
    learning_rate: float = 3e-4
    weight_decay: float = 0.0     # AdamW's decoupled weight decay (0: Adam)
    global_batch_size: int = 256  # split evenly over the replicas
    epochs: int = 40              # an epoch = steps_per_epoch steps, then validation
    steps_per_epoch: int = 25
    patience: int = 6             # epochs without a better balanced validation log loss
                                  # before training stops (0: never stop early)
    temperature_scaling: bool = True  # fit a temperature on the validation split
    # Augmentation of training windows (trainer/augment.py; 0 turns each off).
    augment_gain: float = 0.2     # sd of the log of a per-channel gain
    augment_shift: int = 32       # most rows a window is shifted back from its labelled end
    augment_channel_dropout: float = 0.1  # probability that a channel is zeroed
    augment_noise: float = 0.05   # sd of added Gaussian noise (scaled units)
    # Data.
    balancing: str = "sampling"   # sampling | weights | none
    sampling_density: float = 0.5  # share of the rarest class's windows drawn per pass
    shuffle_windows: int = 4096   # shuffle buffer of windows
    shuffle_groups: int = 2048    # shuffle buffer of groups of 8 window ends (see data.py)
    cycle_length: int = 4         # shards read in parallel
    valid_batch_size: int = 512
    # Run.
    seed: int = 0
    checkpoint_every_steps: int = 50
    summary_every_steps: int = 10
    devices: tuple[str, ...] = ()  # empty = every visible GPU, or the CPU

    def __post_init__(self) -> None:
        for name, choices in (("balancing", BALANCING_MODES), ("front_end", FRONT_ENDS),
                              ("slow_channels", SLOW_CHANNEL_MODES),
                              ("band_power", BAND_POWER_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {choices}")
        if not self.lstm_units or min(self.lstm_units) < 1:
            raise ValueError(f"lstm_units {self.lstm_units!r}: need >= 1 layer of >= 1 unit")
        for name in ("dropout", "feature_dropout", "augment_channel_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} {getattr(self, name)} outside [0, 1)")
        for name in ("weight_decay", "augment_gain", "augment_noise", "augment_shift", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.sampling_density <= 1.0:
            raise ValueError(f"sampling_density {self.sampling_density} outside (0, 1]")
        for name in ("pool", "global_batch_size", "epochs", "steps_per_epoch",
                     "checkpoint_every_steps", "summary_every_steps", "cycle_length", "shuffle_groups",
                     "shuffle_windows", "valid_batch_size", "frame", "hop", "filters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window is not None:
            if self.front_end == "raw" and self.window % self.pool:
                raise ValueError(f"window {self.window} is not a multiple of pool {self.pool}")
            if self.front_end != "raw" and self.window < self.frame:
                raise ValueError(f"window {self.window} is shorter than a frame ({self.frame})")

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
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**{k: _coerce(known[k], v) for k, v in values.items()})

    def save(self, path: str) -> None:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str) -> "TrainConfig":
        with tf.io.gfile.GFile(path) as f:
            return cls.from_dict(json.load(f), source=path)


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turns JSON or command-line values into the field's type."""
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
                raise ValueError(f"{field.name}: {value!r} is not true or false")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if isinstance(field.default, float):
        return float(value)
    if isinstance(field.default, int) or field.name == "window":
        return int(value)
    return value


def add_config_arguments(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """Adds `--config FILE` and one `--<key>` option per TrainConfig field not excluded."""
    parser.add_argument("--config", help="JSON file with TrainConfig keys; options below override it")
    for field in dataclasses.fields(TrainConfig):
        if field.name in exclude:
            continue
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name,
                            default=None, help=f"default: {shown}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config file's values (if any), overridden by the options given."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(TrainConfig.load(args.config).to_dict())
    for field in dataclasses.fields(TrainConfig):
        given = getattr(args, field.name, None)
        if given is not None:
            values[field.name] = given
    return TrainConfig.from_dict(values, source=args.config or "command line")
