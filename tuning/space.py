"""The search space, and how a trial's hyperparameters become a TrainConfig.

Tuned: the number of LSTM layers, the units of each layer (a conditional
hyperparameter per layer, so a 1-layer trial has no `units_1`), dropout, the
learning rate and the global minibatch size.  Everything else (window, pool,
epochs, steps per epoch, balancing, seed, ...) comes from the base TrainConfig.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import keras_tuner as kt

from trainer.config import TrainConfig

TUNED_KEYS = ("lstm_units", "dropout", "learning_rate", "global_batch_size")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    max_layers: int = 3
    units: tuple[int, ...] = (32, 64, 128, 256)
    dropout: tuple[float, float] = (0.0, 0.5)            # range, in steps of 0.1
    learning_rate: tuple[float, float] = (1e-4, 1e-2)    # range, sampled on a log scale
    batch_sizes: tuple[int, ...] = (64, 128, 256, 512)   # global minibatch sizes

    def __post_init__(self) -> None:
        if self.max_layers < 1:
            raise ValueError(f"max_layers must be >= 1, got {self.max_layers}")
        if not self.units or min(self.units) < 1:
            raise ValueError(f"units {self.units!r}: need at least one positive choice")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes {self.batch_sizes!r}: need positive choices")
        for name in ("dropout", "learning_rate"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} range {low}..{high} is empty")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchSpace":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def config(self, hp: kt.HyperParameters, base: TrainConfig) -> TrainConfig:
        """Declares the hyperparameters in `hp` (first call) and returns the trial's config."""
        layers = _int(hp, "lstm_layers", 1, self.max_layers)
        units = []
        for i in range(self.max_layers):
            with hp.conditional_scope("lstm_layers", list(range(i + 1, self.max_layers + 1))):
                value = _choice(hp, f"units_{i}", self.units)
            if i < layers:
                units.append(value)
        tuned = {
            "lstm_units": units,
            "dropout": _float(hp, "dropout", *self.dropout, step=0.1),
            "learning_rate": _float(hp, "learning_rate", *self.learning_rate, sampling="log"),
            "global_batch_size": _choice(hp, "batch_size", self.batch_sizes),
        }
        return TrainConfig.from_dict({**base.to_dict(), **tuned}, source="trial")


def _int(hp: kt.HyperParameters, name: str, low: int, high: int) -> int:
    return hp.Fixed(name, low) if low == high else hp.Int(name, low, high)


def _choice(hp: kt.HyperParameters, name: str, values: tuple) -> Any:
    return hp.Fixed(name, values[0]) if len(values) == 1 else hp.Choice(name, list(values))


def _float(hp: kt.HyperParameters, name: str, low: float, high: float, **kwargs) -> float:
    return hp.Fixed(name, low) if low == high else hp.Float(name, low, high, **kwargs)
