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


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Model.
    lstm_units: tuple[int, ...] = (64, 64)  # units of each stacked LSTM layer
    pool: int = 4              # average-pool this many samples before the LSTMs
    dropout: float = 0.2       # input dropout of each LSTM layer (cuDNN-compatible)
    window: Optional[int] = None  # rows per window; None = the manifest's window
    # Optimisation.
    learning_rate: float = 1e-3
    global_batch_size: int = 256  # split evenly over the replicas
    epochs: int = 10
    steps_per_epoch: int = 200
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
        if self.balancing not in BALANCING_MODES:
            raise ValueError(
                f"balancing {self.balancing!r} is not one of {BALANCING_MODES}")
        if not self.lstm_units or min(self.lstm_units) < 1:
            raise ValueError(f"lstm_units {self.lstm_units!r}: need >= 1 layer of >= 1 unit")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} outside [0, 1)")
        if not 0.0 < self.sampling_density <= 1.0:
            raise ValueError(f"sampling_density {self.sampling_density} outside (0, 1]")
        for name in ("pool", "global_batch_size", "epochs", "steps_per_epoch",
                     "checkpoint_every_steps", "summary_every_steps", "cycle_length", "shuffle_groups",
                     "shuffle_windows", "valid_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window is not None and self.window % self.pool:
            raise ValueError(f"window {self.window} is not a multiple of pool {self.pool}")

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
    if field.name == "balancing":
        return str(value)
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
