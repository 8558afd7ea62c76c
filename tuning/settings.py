"""SearchSettings: everything that defines a search, saved as search.json in the tuner
directory, and how two searches' settings differ.

No TensorFlow or keras-tuner at import time: `python -m tuning --help` builds its
options from here and must answer at once.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from trainer.config import AT_LEAST_ONE, Range, TrainConfig
from trainer.shared.errors import UserError
from tuning.space import SearchSpace

ALGORITHMS = ("hyperband", "bayesian", "random")
SETTINGS_NAME = "search.json"
# What a search writes into its tuner directory (tuning/search.py has the layout);
# --overwrite deletes a directory that holds nothing else.
PROJECT = "pilotstate"
TENSORBOARD_DIR = "tensorboard"
REPORT_DIR = "report"
TUNER_DIR_ENTRIES = (SETTINGS_NAME, PROJECT, TENSORBOARD_DIR, REPORT_DIR)
# The allowed values of the numeric settings (checked by their options too).
SETTING_RANGES = {"max_trials": AT_LEAST_ONE, "hyperband_factor": Range(2)}
# Keys of search.json whose option is not `--` + the key with dashes.
_OPTIONS = {"data_dir": "--data", "space.dropout": "--dropout-range",
            "space.learning_rate": "--learning-rate-range"}


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """Everything that defines a search; saved as search.json in the tuner directory."""
    data_dir: str
    algorithm: str = "hyperband"
    max_trials: int = 10          # random and bayesian; hyperband's budget is epochs and factor
    hyperband_factor: int = 3
    space: SearchSpace = SearchSpace()
    base: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"--algorithm {self.algorithm!r} is not one of {ALGORITHMS}")
        for name, allowed in SETTING_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
                raise UserError(f"--{name.replace('_', '-')} {value!r}: not "
                                f"{allowed.describe(int)}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "space": self.space.to_dict(),
                "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchSettings":
        return cls(**{**values, "space": SearchSpace.from_dict(values["space"]),
                      "base": TrainConfig.from_dict(values["base"], source=SETTINGS_NAME)})


def setting_differences(earlier: dict[str, Any], ours: dict[str, Any],
                        ignore: tuple[str, ...] = ()) -> list[str]:
    """Each setting (by its option) whose value differs between two `to_dict()`s:
    "--units 8,16 there, 8,32 now" (the keys of `space` and `base` one by one)."""
    differing = []
    for key in sorted(set(earlier) | set(ours)):
        if key in ignore:
            continue
        there, now = earlier.get(key), ours.get(key)
        if isinstance(there, dict) and isinstance(now, dict):
            differing += [f"{_option(key, inner)} {_shown(there.get(inner))} there, "
                          f"{_shown(now.get(inner))} now"
                          for inner in sorted(set(there) | set(now))
                          if there.get(inner) != now.get(inner)]
        elif there != now:
            differing.append(f"{_option('', key)} {_shown(there)} there, {_shown(now)} now")
    return differing


def _option(section: str, key: str) -> str:
    name = f"{section}.{key}" if section else key
    return _OPTIONS.get(name, "--" + key.replace("_", "-"))


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value) or "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return "(none)" if value is None else str(value)


def is_worker() -> bool:
    """A worker of a distributed search (not the chief, not a single process), as set by
    keras-tuner's KERASTUNER_TUNER_ID and KERASTUNER_ORACLE_IP."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get(
        "KERASTUNER_TUNER_ID", "")
