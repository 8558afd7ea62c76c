"""Channel models of the stand-in data, and the signatures of the four states.

Every seat (pilot) has a fixed `SeatProfile` (drawn from seed, crew and seat), used
for all of its sessions: EEG gain and alpha frequency, heart and breathing rates,
DC levels of r, ecg and gsr.  Crews differ in scale by up to 2x (`crew_gain`).

State signatures (the documented ground truth; deliberately modest):

* EEG (visible inside 1 s, the trainer's default window).  The core EEG of every
  channel is a mix of three narrow-band rhythms (theta ~6 Hz, alpha ~9.5-10.5 Hz,
  beta ~20 Hz, each a sinusoid with a random-walk phase, mixed over channels) and
  broadband noise.  The state sets the *variance shares* of these parts
  (`EEG_BAND_SHARES`): A alpha-dominated, C more beta, D more theta, B a broadband
  burst.  The shares sum to 1 in every state, so the per-sample variance (and,
  the parts being near-Gaussian, the single-sample distribution) does not change
  with the state; only spectra over a window do.
* Heart rate (`HEART_RATE_FACTOR`, x the seat's 60-80 bpm): B +15%, D +7%, C +4%.
* Breathing rate (`BREATH_RATE_FACTOR`, x 12-16 /min): B +25%, D +12%, C +8%.
* Skin response: a phasic gsr response to changes of arousal (`GSR_AROUSAL`: A 0,
  C 0.3, D 0.5, B 1): the 1 s minus the 6 s moving average of arousal, i.e. a
  rise over ~1 s when arousal goes up that fades over ~6 s (a dip when it goes
  down), small against the seat's slow drift.
All rate and level changes ramp in over the smoothing windows below, not at once.

Messiness shared with the real channels: r, ecg and gsr are step-like (each value
held for ~8 samples); EEG has state-independent heavy tails (electrode pops, eye
blinks on frontal channels, rare single-sample spikes up to +-1,200 uV); whole-session
drop-outs (ecg or gsr == 0.0) and EEG flat-lines (0.0) are applied by the caller;
one crew's ecg is all non-positive; values are rounded to a few decimals and a
small fraction of r and gsr carry float noise (33.160301000000004).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from trainer.record_spec import CHANNELS, CLASSES, SAMPLE_RATE_HZ

EEG_CHANNELS = tuple(name for name in CHANNELS if name.startswith("eeg_"))
NUM_EEG = len(EEG_CHANNELS)
ECG, R, GSR = (CHANNELS.index(name) for name in ("ecg", "r", "gsr"))
FRONTAL = [EEG_CHANNELS.index(name) for name in ("eeg_fp1", "eeg_fp2", "eeg_f7", "eeg_f8")]

# Variance shares of the EEG core: (theta, alpha, beta, broadband); each row sums to 1.
EEG_BAND_SHARES = np.array([
    (0.18, 0.40, 0.17, 0.25),  # A baseline: alpha
    (0.20, 0.25, 0.20, 0.35),  # B startle: broadband burst
    (0.14, 0.30, 0.31, 0.25),  # C channelized attention: beta
    (0.30, 0.28, 0.17, 0.25),  # D diverted attention: theta
])
THETA_HZ, BETA_HZ = 6.0, 20.0
SOURCES_PER_BAND = 3
PHASE_WALK_RAD = 0.3  # per-sample phase step sd: ~2 Hz wide bands
MIX_BLOCK_ROWS = 65_536
HEART_RATE_FACTOR = np.array([1.00, 1.15, 1.04, 1.07])
BREATH_RATE_FACTOR = np.array([1.00, 1.25, 1.08, 1.12])
GSR_AROUSAL = np.array([0.0, 1.0, 0.3, 0.5])
assert EEG_BAND_SHARES.shape[0] == len(CLASSES)

EEG_SHARE_SMOOTHING_S = 0.25
RATE_SMOOTHING_S = 2.0
GSR_RESPONSE_S = (1.0, 6.0)  # fast and slow averaging of arousal
GSR_RESPONSE_GAIN = 0.25     # x the seat's gsr gain; the slow drift has 1x
HOLD_SAMPLES = 8           # mean run of a held r/ecg/gsr value
BLINKS_PER_SECOND = 0.25
POPS_PER_SECOND = 0.2      # per channel
SPIKES_PER_SAMPLE = 2e-5
EEG_LIMIT_UV = 1200.0
FLOAT_NOISE_SHARE = 0.01
DECIMALS = np.array([5] * NUM_EEG + [2, 3, 3])  # ecg, r, gsr


@dataclasses.dataclass(frozen=True)
class SeatProfile:
    """A pilot's fixed physiology: the same for every session of the seat."""

    eeg_sd_uv: np.ndarray     # (20,) core sd per channel
    alpha_hz: float
    mixing: np.ndarray        # (3 bands, SOURCES_PER_BAND, 20), unit norm per channel
    heart_bpm: float
    ecg_offset: float
    ecg_amplitude: float      # negative: a downward, all non-positive ecg
    breath_per_min: float
    r_level: float
    r_amplitude: float
    gsr_level: float
    gsr_gain: float


def seat_profile(seed: int, crew: int, seat: int, negative_ecg: bool) -> SeatProfile:
    """Draw a seat's profile; crews share a gain (0.7-1.4) so their ranges differ up to 2x."""
    crew_gain = np.random.default_rng([seed, crew, 7]).uniform(0.7, 1.4)
    rng = np.random.default_rng([seed, crew, seat, 8])
    mixing = rng.normal(size=(3, SOURCES_PER_BAND, NUM_EEG))
    mixing /= np.sqrt((mixing ** 2).sum(axis=1, keepdims=True))
    ecg_amplitude = crew_gain * rng.uniform(1500.0, 6000.0)
    if negative_ecg:
        ecg_offset, ecg_amplitude = -crew_gain * rng.uniform(4000.0, 9000.0), -ecg_amplitude
    else:
        ecg_offset = crew_gain * rng.uniform(-9000.0, 14000.0)
    return SeatProfile(
        eeg_sd_uv=crew_gain * rng.uniform(6.0, 20.0) * rng.uniform(0.7, 1.3, NUM_EEG),
        alpha_hz=rng.uniform(9.5, 10.5),
        mixing=mixing,
        heart_bpm=rng.uniform(60.0, 80.0),
        ecg_offset=ecg_offset,
        ecg_amplitude=ecg_amplitude,
        breath_per_min=rng.uniform(12.0, 16.0),
        r_level=rng.uniform(640.0, 830.0),
        r_amplitude=crew_gain * rng.uniform(25.0, 45.0),
        gsr_level=crew_gain * rng.uniform(150.0, 1100.0),
        gsr_gain=crew_gain * rng.uniform(40.0, 120.0),
    )


def moving_average(values: np.ndarray, seconds: float) -> np.ndarray:
    """Centred box average along axis 0 (edges use the available samples)."""
    width = max(1, int(seconds * SAMPLE_RATE_HZ))
    padded = np.concatenate([np.repeat(values[:1], width // 2, axis=0), values,
                             np.repeat(values[-1:], width - width // 2, axis=0)])
    sums = np.cumsum(padded, axis=0)
    return (sums[width:] - sums[:-width])[: len(values)] / width


def band_sources(rows: int, hz: float, rng: np.random.Generator) -> np.ndarray:
    """(rows, SOURCES_PER_BAND) unit-variance rhythms around `hz` (random-walk phase)."""
    step = 2.0 * np.pi * hz / SAMPLE_RATE_HZ
    phase = np.cumsum(rng.normal(step, PHASE_WALK_RAD, size=(rows, SOURCES_PER_BAND)), axis=0)
    phase += rng.uniform(0.0, 2.0 * np.pi, SOURCES_PER_BAND)
    return np.sqrt(2.0) * np.sin(phase)


def eeg_core(profile: SeatProfile, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(rows, 20) zero-mean EEG whose band shares follow the state (unit variance).

    Mixed block by block so that no temporary is as large as the output."""
    rows = len(labels)
    gains = np.sqrt(moving_average(EEG_BAND_SHARES[labels], EEG_SHARE_SMOOTHING_S))
    sources = [band_sources(rows, hz, rng) for hz in (THETA_HZ, profile.alpha_hz, BETA_HZ)]
    eeg = rng.standard_normal((rows, NUM_EEG))
    for start in range(0, rows, MIX_BLOCK_ROWS):
        block = slice(start, start + MIX_BLOCK_ROWS)
        eeg[block] *= gains[block, 3:4]
        for band, source in enumerate(sources):
            eeg[block] += (source[block] @ profile.mixing[band]) * gains[block, band:band + 1]
    return eeg


def add_artefacts(eeg: np.ndarray, rng: np.random.Generator) -> None:
    """State-independent heavy tails, in place (units of the core sd).

    Electrode pops on every channel (a level jump held for 0.1-0.5 s, lognormal
    height, random sign) carry most of the variance, so the quartiles sit near
    +-0.4 SD as in the real files; eye blinks add a half-sine on frontal channels;
    rare single-sample spikes reach the +-1,200 uV clip.
    """
    rows = len(eeg)
    pops = rng.poisson(POPS_PER_SECOND * rows / SAMPLE_RATE_HZ * NUM_EEG)
    starts = rng.integers(0, rows, size=pops)
    ends = np.minimum(rows, starts + rng.integers(25, 128, size=pops))
    channels = rng.integers(0, NUM_EEG, size=pops)
    heights = rng.lognormal(np.log(4.5), 0.8, size=pops) * rng.choice([-1.0, 1.0], size=pops)
    steps = np.zeros((rows + 1, NUM_EEG))
    np.add.at(steps, (starts, channels), heights)
    np.add.at(steps, (ends, channels), -heights)
    np.cumsum(steps, axis=0, out=steps)
    eeg += steps[:rows]
    for start in rng.integers(0, rows, size=rng.poisson(BLINKS_PER_SECOND * rows / SAMPLE_RATE_HZ)):
        width = int(rng.integers(40, 100))
        shape = np.sin(np.linspace(0.0, np.pi, width))[: rows - start]
        height = rng.lognormal(np.log(6.0), 0.6)
        eeg[start:start + width, FRONTAL] += height * shape[:, None] * rng.uniform(0.5, 1.0, len(FRONTAL))
    spikes = rng.poisson(SPIKES_PER_SAMPLE * eeg.size)
    eeg[rng.integers(0, rows, spikes), rng.integers(0, NUM_EEG, spikes)] += rng.standard_t(2.0, spikes) * 15.0


def held(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step-like: each value is held until the next update (updates ~every 8 samples)."""
    updates = rng.random(len(values)) < 1.0 / HOLD_SAMPLES
    updates[0] = True
    latest = np.maximum.accumulate(np.where(updates, np.arange(len(values)), 0))
    return values[latest]


def rhythm_phase(rate_per_min: np.ndarray) -> np.ndarray:
    """Cycles elapsed at each sample for a per-sample rate (per minute)."""
    return np.cumsum(rate_per_min) / (60.0 * SAMPLE_RATE_HZ)


def ecg_wave(phase: np.ndarray) -> np.ndarray:
    """One beat per cycle: a sharp R peak and a broad T wave (peak 1)."""
    fraction = phase % 1.0
    return np.exp(-0.5 * ((fraction - 0.3) / 0.012) ** 2) + 0.25 * np.exp(-0.5 * ((fraction - 0.6) / 0.05) ** 2)


def slow_drift(rows: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth, bounded wander in [-1, 1]: two slow sinusoids (periods 30 s to 5 min)."""
    seconds = np.arange(rows) / SAMPLE_RATE_HZ
    periods = rng.uniform(30.0, 300.0, 2)
    phases = rng.uniform(0.0, 2.0 * np.pi, 2)
    return 0.5 * np.sin(2.0 * np.pi * seconds[:, None] / periods + phases).sum(axis=1)


def physiology(profile: SeatProfile, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(rows, 3): ecg, r, gsr with state-dependent heart rate, breathing and skin response."""
    rows = len(labels)
    heart = profile.heart_bpm * moving_average(HEART_RATE_FACTOR[labels], RATE_SMOOTHING_S)
    heart *= 1.0 + 0.03 * slow_drift(rows, rng)
    ecg = profile.ecg_offset + profile.ecg_amplitude * ecg_wave(rhythm_phase(heart))
    ecg += rng.normal(0.0, 0.02 * abs(profile.ecg_amplitude), rows)
    if profile.ecg_amplitude < 0:
        ecg = np.minimum(ecg, 0.0)
    breath = profile.breath_per_min * moving_average(BREATH_RATE_FACTOR[labels], RATE_SMOOTHING_S)
    r = profile.r_level + profile.r_amplitude * np.sin(2.0 * np.pi * rhythm_phase(breath))
    r += 0.05 * profile.r_amplitude * rng.standard_normal(rows)
    fast, slow = (moving_average(GSR_AROUSAL[labels], seconds) for seconds in GSR_RESPONSE_S)
    response = GSR_RESPONSE_GAIN * (fast - slow)
    gsr = profile.gsr_level + profile.gsr_gain * (response + slow_drift(rows, rng))
    gsr = np.clip(gsr + 0.01 * profile.gsr_gain * rng.standard_normal(rows), 0.0, 2000.0)
    return held(np.stack([ecg, r, gsr], axis=1), rng)


def round_like_real(signals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round (in place) to each channel's decimals; add float noise to ~1% of r and gsr."""
    scale = 10.0 ** DECIMALS
    signals *= scale
    np.rint(signals, out=signals)
    signals /= scale
    for column in (R, GSR):
        noisy = rng.random(len(signals)) < FLOAT_NOISE_SHARE
        signals[noisy, column] += 1e-6
    return signals


def seat_signals(profile: SeatProfile, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(rows, 23) float64 channels in CHANNELS order for one seat's session."""
    values = np.empty((len(labels), len(CHANNELS)))
    eeg = eeg_core(profile, labels, rng)
    add_artefacts(eeg, rng)
    eeg *= profile.eeg_sd_uv
    np.clip(eeg, -EEG_LIMIT_UV, EEG_LIMIT_UV, out=values[:, :NUM_EEG])
    del eeg
    values[:, NUM_EEG:] = physiology(profile, labels, rng)
    return round_like_real(values, rng)


def flatline_eeg(signals: np.ndarray, stretches: int, scale: float, rng: np.random.Generator) -> None:
    """In place: `stretches` spans (2-20 s at scale 1, >= 1 s) where some EEG channels read 0.0."""
    rows = len(signals)
    for _ in range(stretches):
        length = int(max(1.0, rng.uniform(2.0, 20.0) * scale) * SAMPLE_RATE_HZ)
        start = int(rng.integers(0, max(1, rows - length)))
        channels = rng.choice(NUM_EEG, size=int(rng.integers(1, NUM_EEG + 1)), replace=False)
        signals[start:start + length, np.sort(channels)] = 0.0
