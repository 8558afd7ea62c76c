"""The search space, and how a trial's hyperparameters become a TrainConfig.

Tuned: the number of LSTM layers, the units of each layer (a conditional
hyperparameter per layer, so a 1-layer trial has no `units_1`), dropout, the
learning rate, the global minibatch size, the front end, the window, the frame
and hop of the framed front ends (conditional on the front end: a raw trial has
neither), the strength of augmentation and temperature scaling.  A dimension
with one choice is Fixed; an empty one is Fixed at the base config's value.
Everything else (pool, epochs, steps per epoch, patience, balancing, seed, the
base augment_* strengths, ...) comes from the base TrainConfig.

Invalid combinations cannot be drawn: the hop is a fraction (0, 1] of the frame,
and `check` refuses, before the search starts, a window longer than the data's
or a frame that does not fit every window.  Errors name the options of
`python -m tuning search` (field `foo_bar` is option `--foo-bar`; the ranges
`dropout` and `learning_rate` are `--dropout-range`, `--learning-rate-range`).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from trainer.config import (AT_LEAST_ONE, FRONT_ENDS, NON_NEGATIVE, Range, TrainConfig,
                            field_range)
from trainer.shared.errors import UserError

if TYPE_CHECKING:  # keras_tuner imports TensorFlow, which `--help` must not wait for
    import keras_tuner as kt

# TrainConfig keys that a trial sets from its hyperparameters alone, so not trainer
# options of the tuner.  The augment_* keys stay options: `augment` scales them.
TUNED_KEYS = ("lstm_units", "dropout", "learning_rate", "global_batch_size", "front_end",
              "window", "frame", "hop", "temperature_scaling")
AUGMENT_SCALED = ("augment_gain", "augment_channel_dropout", "augment_noise")  # and augment_shift
FRAMED_FRONT_ENDS = tuple(f for f in FRONT_ENDS if f != "raw")  # those with frame and hop


class SpaceError(UserError):
    """The search space cannot be searched (on this data, with this base config)."""


# The allowed values of each numeric dimension (of its bounds for the two ranges), checked
# by its option (tuning/task.py) and by SearchSpace: the tuned TrainConfig keys' own ranges.
RANGES = {"max_layers": AT_LEAST_ONE, "units": AT_LEAST_ONE, "batch_sizes": AT_LEAST_ONE,
          "windows": AT_LEAST_ONE, "frames": AT_LEAST_ONE,
          "dropout": field_range("dropout"), "learning_rate": field_range("learning_rate"),
          "hop_fractions": Range(0, 1, low_open=True), "augment": NON_NEGATIVE}
RANGE_OPTIONS = {"dropout": "--dropout-range", "learning_rate": "--learning-rate-range"}


def shown(values: tuple) -> str:
    """Choices as the command line writes them: 0.5,2 and true,false."""
    return ",".join(str(v).lower() if isinstance(v, bool) else f"{v:g}" if isinstance(v, float)
                    else str(v) for v in values)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    max_layers: int = 3
    units: tuple[int, ...] = (32, 64, 128, 256)
    dropout: tuple[float, float] = (0.0, 0.5)            # range, in steps of 0.1
    learning_rate: tuple[float, float] = (1e-4, 1e-2)    # range, sampled on a log scale
    batch_sizes: tuple[int, ...] = (64, 128, 256, 512)   # global minibatch sizes
    # Choices; () = Fixed at the base config's value.
    front_ends: tuple[str, ...] = ()
    windows: tuple[int, ...] = ()                        # rows, each <= the data's window
    frames: tuple[int, ...] = ()                         # rows, each <= every window
    hop_fractions: tuple[float, ...] = ()                # hop = round(frame x fraction)
    augment: tuple[float, ...] = (0.0, 1.0, 2.0)         # multipliers of the base augment_*
    temperature_scaling: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if self.max_layers not in RANGES["max_layers"]:
            raise SpaceError(f"--max-layers {self.max_layers}: not "
                             f"{RANGES['max_layers'].describe(int)}")
        for name in ("units", "batch_sizes", "windows", "frames"):
            values = getattr(self, name)
            bad = [v for v in values if v not in RANGES[name]]
            if bad:
                flag = "--" + name.replace("_", "-")
                raise SpaceError(f"{flag} {shown(values)}: {shown(bad[:1])} is not "
                                 f"{RANGES[name].describe(int)}")
        if not self.units or not self.batch_sizes:
            raise SpaceError("--units and --batch-sizes need at least one choice each")
        for name, flag in RANGE_OPTIONS.items():
            bounds = getattr(self, name)
            if len(bounds) != 2:
                raise SpaceError(f"{flag} {shown(bounds)}: need LOW,HIGH")
            for which, value in zip(("LOW", "HIGH"), bounds):
                if value not in RANGES[name]:
                    raise SpaceError(f"{flag} {shown(bounds)}: {which} {shown((value,))} is not "
                                     f"{RANGES[name].describe()}")
            if not bounds[0] <= bounds[1]:
                raise SpaceError(f"{flag} {shown(bounds)}: need LOW,HIGH with LOW <= HIGH")
        unknown = sorted(set(self.front_ends) - set(FRONT_ENDS))
        if unknown:
            raise SpaceError(f"--front-ends {shown(unknown)}: not among {shown(FRONT_ENDS)}")
        if any(f not in RANGES["hop_fractions"] for f in self.hop_fractions):
            raise SpaceError(f"--hop-fractions {shown(self.hop_fractions)}: each must be in "
                             "(0, 1], so that the hop is at most the frame")
        bad = [m for m in self.augment if m not in RANGES["augment"]]
        if bad:
            raise SpaceError(f"--augment {shown(self.augment)}: {shown(bad[:1])} is not "
                             f"{RANGES['augment'].describe()}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchSpace":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def check(self, base: TrainConfig, data_window: int) -> None:
        """Refuses, naming the option, what some trial could not train on: a window
        longer than the data's (the records guarantee complete windows of the manifest's
        length only), a frame longer than a window or --frame-span, a raw window that
        `pool` does not divide, or an augmentation that scales channel dropout to 1 or
        more."""
        windows = self.windows or (base.window,)
        too_long = [w for w in windows if w > data_window]
        if too_long:
            raise SpaceError(f"--windows {shown(too_long)}: longer than the data's window "
                             f"({data_window} rows, manifest.json)")
        front_ends = self.front_ends or (base.front_end,)
        if any(f in FRAMED_FRONT_ENDS for f in front_ends):
            frames = self.frames or (base.frame,)
            if max(frames) > min(windows):
                raise SpaceError(
                    f"--frames {shown(frames)} and --windows {shown(windows)}: every frame "
                    f"must fit every window (frame {max(frames)} > window {min(windows)})")
            if base.frame_span is not None and max(frames) > base.frame_span:
                raise SpaceError(f"--frames {shown(frames)}: every frame must fit --frame-span "
                                 f"{base.frame_span} (frame {max(frames)})")
        if "raw" in front_ends and any(w % base.pool for w in windows):
            raise SpaceError(f"--windows {shown(windows)}: the raw front end needs windows "
                             f"that --pool {base.pool} divides")
        strongest = base.augment_channel_dropout * max(self.augment or (1.0,))
        if strongest >= 1.0:
            raise SpaceError(f"--augment {shown(self.augment)} scales --augment-channel-dropout "
                             f"{base.augment_channel_dropout} to {strongest:g}, not below 1")

    def config(self, hp: kt.HyperParameters, base: TrainConfig) -> TrainConfig:
        """Declares the hyperparameters in `hp` (first call) and returns the trial's config.

        `base` must have its window resolved (trainer.data.datasets.resolve_window)."""
        layers = _int(hp, "lstm_layers", 1, self.max_layers)
        units = []
        for i in range(self.max_layers):
            with hp.conditional_scope("lstm_layers", list(range(i + 1, self.max_layers + 1))):
                value = _choice(hp, f"units_{i}", self.units)
            if i < layers:
                units.append(value)
        front_ends = self.front_ends or (base.front_end,)
        tuned = {
            "lstm_units": units,
            "dropout": _float(hp, "dropout", *self.dropout, step=0.1),
            "learning_rate": _float(hp, "learning_rate", *self.learning_rate, sampling="log"),
            "global_batch_size": _choice(hp, "batch_size", self.batch_sizes),
            "front_end": _choice(hp, "front_end", front_ends),
            "window": _choice(hp, "window", self.windows or (base.window,)),
            "temperature_scaling": _boolean(
                hp, "temperature_scaling", self.temperature_scaling or (base.temperature_scaling,)),
        }
        framed = [f for f in front_ends if f in FRAMED_FRONT_ENDS]
        if framed:
            with hp.conditional_scope("front_end", framed):
                frame = _choice(hp, "frame", self.frames or (base.frame,))
                fraction = _choice(hp, "hop_fraction",
                                   self.hop_fractions or (base.hop / base.frame,))
            if frame is not None:  # None: this trial's front end is raw
                tuned.update(frame=frame, hop=max(1, round(frame * fraction)))
        strength = _choice(hp, "augment", self.augment or (1.0,))
        tuned.update({key: getattr(base, key) * strength for key in AUGMENT_SCALED})
        tuned["augment_shift"] = round(base.augment_shift * strength)
        return TrainConfig.from_dict({**base.to_dict(), **tuned}, source="trial")


def _int(hp: kt.HyperParameters, name: str, low: int, high: int) -> int:
    return hp.Fixed(name, low) if low == high else hp.Int(name, low, high)


def _choice(hp: kt.HyperParameters, name: str, values: tuple) -> Any:
    return hp.Fixed(name, values[0]) if len(values) == 1 else hp.Choice(name, list(values))


def _boolean(hp: kt.HyperParameters, name: str, values: tuple[bool, ...]) -> bool:
    """Both values: hp.Boolean (keras-tuner's Choice would turn booleans into 0 and 1)."""
    return hp.Boolean(name) if len(set(values)) == 2 else hp.Fixed(name, values[0])


def _float(hp: kt.HyperParameters, name: str, low: float, high: float, **kwargs) -> float:
    return hp.Fixed(name, low) if low == high else hp.Float(name, low, high, **kwargs)
