"""What a stand-in physiology sets: where, how strongly and how late each state shows.

A `Physiology` is a table of per-state factors (rows in CLASSES order: A, B, C, D)
that `synth.signals` turns into channels.  A neutral field leaves that signal the
same in every state, so a physiology names only what it changes.  Each physiology
module (`band_shares`, `band_power`, ...) builds one instance and documents, with
the literature it leans on, why the states show where it puts them.

Per-pilot response: every pilot draws a response gain `g` (`response_gain`, 0 for a
share `non_responders` of pilots) and a latency (`latency_s`) once, for all of their
sessions; a state's signature is then `g` times its change from A, delayed by the
latency (`for_pilot`).  The defaults (g = 1, no latency) make every pilot respond the
same, at once.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from trainer.records.spec import CHANNELS, CLASSES, SAMPLE_RATE_HZ

EEG_CHANNELS = tuple(name for name in CHANNELS if name.startswith("eeg_"))
# The core EEG's parts, in the order of `eeg_band_shares` and `eeg_power`'s second axis.
EEG_PARTS = ("theta", "alpha", "beta", "broadband")
REGIONS: dict[str, tuple[str, ...]] = {
    "frontal": ("eeg_fp1", "eeg_fp2", "eeg_f7", "eeg_f8", "eeg_f3", "eeg_f4", "eeg_fz"),
    "central": ("eeg_c3", "eeg_c4", "eeg_cz"),
    "temporal": ("eeg_t3", "eeg_t4", "eeg_t5", "eeg_t6"),
    "parietal": ("eeg_p3", "eeg_p4", "eeg_pz", "eeg_poz"),
    "occipital": ("eeg_o1", "eeg_o2"),
}
assert sorted(sum(REGIONS.values(), ())) == sorted(EEG_CHANNELS)
A = CLASSES.index("A")


def per_state(values: Mapping[str, float], neutral: float) -> np.ndarray:
    """A (4,) per-state array: `values` by class name, `neutral` for the rest."""
    unknown = set(values) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown state(s) {sorted(unknown)}; expected some of {CLASSES}")
    return np.array([float(values.get(name, neutral)) for name in CLASSES])


def power_changes(changes: Mapping[tuple[str, str, str], float]) -> np.ndarray:
    """(4 states, 4 parts, 20 channels) power factors against the pilot's own A level,
    from {(state, part, region): factor}; 1 (no change) elsewhere."""
    power = np.ones((len(CLASSES), len(EEG_PARTS), len(EEG_CHANNELS)))
    for (state, part, region), factor in changes.items():
        channels = [EEG_CHANNELS.index(name) for name in REGIONS[region]]
        power[CLASSES.index(state), EEG_PARTS.index(part), channels] = factor
    return power


def channel_weights(weights: Mapping[str, float]) -> np.ndarray:
    """(20,) weights by region name; 0 for regions not named."""
    out = np.zeros(len(EEG_CHANNELS))
    for region, weight in weights.items():
        out[[EEG_CHANNELS.index(name) for name in REGIONS[region]]] = weight
    return out


ONES = per_state({}, 1.0)
ZEROS = per_state({}, 0.0)
# Today's baseline (A) shares of theta, alpha, beta and broadband variance.
RESTING_SHARES = np.array([0.18, 0.40, 0.17, 0.25])


@dataclasses.dataclass(frozen=True)
class Physiology:
    """Per-state signatures of one stand-in physiology (neutral unless set)."""

    name: str
    summary: str
    # EEG: variance shares of the core's parts (rows sum to 1: the total is unchanged)
    eeg_band_shares: np.ndarray = dataclasses.field(
        default_factory=lambda: np.tile(RESTING_SHARES, (len(CLASSES), 1)))
    # EEG: power factors per part and channel, not compensated (None: no change)
    eeg_power: np.ndarray | None = None
    # Heart and breathing: x the pilot's rate; breathing depth x the pilot's amplitude
    heart_rate: np.ndarray = dataclasses.field(default_factory=ONES.copy)
    breath_rate: np.ndarray = dataclasses.field(default_factory=ONES.copy)
    breath_depth: np.ndarray = dataclasses.field(default_factory=ONES.copy)
    # Skin conductance: arousal (0-1) drives a phasic response (rise over ~1 s fading
    # over ~6 s, x gsr_response_gain) and a tonic level shift (x scl_gain, over ~10 s);
    # skin-conductance responses (SCRs) come at scr_per_minute.
    gsr_arousal: np.ndarray = dataclasses.field(default_factory=ZEROS.copy)
    gsr_response_gain: float = 0.0
    scl_gain: float = 0.0
    scr_per_minute: np.ndarray = dataclasses.field(default_factory=ZEROS.copy)
    # Artefacts: blink rate x the resting 0.25/s; EMG sd (units of the core EEG sd) on
    # emg_channels; movement artefacts per minute.
    blink_rate: np.ndarray = dataclasses.field(default_factory=ONES.copy)
    emg_sd: np.ndarray = dataclasses.field(default_factory=ZEROS.copy)
    emg_channels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(EEG_CHANNELS)))
    movements_per_minute: np.ndarray = dataclasses.field(default_factory=ZEROS.copy)
    # Who responds, how strongly and how late (drawn once per pilot)
    response_gain: tuple[float, float] = (1.0, 1.0)
    non_responders: float = 0.0
    latency_s: tuple[float, float] = (0.0, 0.0)

    STATE_FIELDS = ("eeg_band_shares", "eeg_power", "heart_rate", "breath_rate", "breath_depth",
                    "gsr_arousal", "scr_per_minute", "blink_rate", "emg_sd",
                    "movements_per_minute")

    @property
    def varies_by_pilot(self) -> bool:
        return (self.response_gain != (1.0, 1.0) or self.non_responders > 0
                or self.latency_s != (0.0, 0.0))

    def for_pilot(self, gain: float) -> "Physiology":
        """This physiology with every state's change from A scaled by `gain`."""
        if gain == 1.0:
            return self
        changed = {}
        for name in self.STATE_FIELDS:
            table = getattr(self, name)
            if table is not None:
                changed[name] = table[A] + gain * (table - table[A])
        return dataclasses.replace(self, **changed)

    def pilot_response(self, seed: int, crew: int, seat: int) -> tuple[float, int]:
        """(gain, latency in rows) of one pilot: the same for all sessions."""
        if not self.varies_by_pilot:
            return 1.0, 0
        rng = np.random.default_rng([seed, crew, seat, 11])
        gain = rng.uniform(*self.response_gain)
        if rng.random() < self.non_responders:
            gain = 0.0
        return float(gain), int(round(rng.uniform(*self.latency_s) * SAMPLE_RATE_HZ))

