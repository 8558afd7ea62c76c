"""Channel models of the stand-in data; a `Physiology` says where the states show.

Every seat (pilot) has a fixed `SeatProfile` (drawn from seed, crew and seat), used
for all of its sessions: EEG gain and alpha frequency, heart and breathing rates,
DC levels of r, ecg and gsr.  Crews differ in scale by up to 2x (`crew_gain`).

The channels, and what a physiology (`synth.physiology`) can make the state change:

* EEG core: every channel mixes three narrow-band rhythms (theta ~6 Hz, alpha
  ~9.5-10.5 Hz, beta ~20 Hz, each a sinusoid with a random-walk phase, mixed over
  channels) and broadband noise, at variance shares per state (`eeg_band_shares`,
  total fixed) and, where set, power factors per part and channel (`eeg_power`,
  not compensated).  Changes ramp in over 0.25 s.
* Artefacts: electrode pops, rare spikes (state-independent), blinks on frontal
  channels (`blink_rate`), muscle EMG (`emg_sd` on `emg_channels`) and movement
  deflections (`movements_per_minute`).
* ecg and r: heart and breathing rhythms at the pilot's rate x `heart_rate` /
  `breath_rate`, breathing depth x `breath_depth`; changes ramp in over 2 s.
* gsr: the pilot's level and slow drift, a phasic response to changes of arousal
  (`gsr_arousal`: the 1 s minus the 6 s moving average, x `gsr_response_gain`), a
  tonic rise with arousal over 10 s (`scl_gain`) and skin-conductance responses
  (`scr_per_minute`).
Every signature follows the pilot's *response labels*: the labels delayed by the
pilot's latency, with the pilot's gain applied to the physiology (`Physiology.
for_pilot`).  Draws that only a physiology's extra signatures need come from their
own stream (`extra`), so the default physiology's files do not depend on them.

Messiness shared with the real channels: r, ecg and gsr are step-like (each value
held for ~8 samples); EEG has heavy tails (electrode pops, eye blinks on frontal
channels, rare single-sample spikes up to +-1,200 uV); whole-session drop-outs (ecg
or gsr == 0.0) and EEG flat-lines (0.0) are applied by the caller; one crew's ecg is
all non-positive; values are rounded to a few decimals and a small fraction of r
and gsr carry float noise (33.160301000000004).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from beam_preprocess.synth.physiology import Physiology
from beam_preprocess.synth.physiology.signature import EEG_CHANNELS
from trainer.records.spec import CHANNELS, SAMPLE_RATE_HZ

NUM_EEG = len(EEG_CHANNELS)
ECG, R, GSR = (CHANNELS.index(name) for name in ("ecg", "r", "gsr"))
FRONTAL = [EEG_CHANNELS.index(name) for name in ("eeg_fp1", "eeg_fp2", "eeg_f7", "eeg_f8")]

THETA_HZ, BETA_HZ = 6.0, 20.0
SOURCES_PER_BAND = 3
PHASE_WALK_RAD = 0.3  # per-sample phase step sd: ~2 Hz wide bands
MIX_BLOCK_ROWS = 65_536

EEG_SHARE_SMOOTHING_S = 0.25
RATE_SMOOTHING_S = 2.0
GSR_RESPONSE_S = (1.0, 6.0)  # fast and slow averaging of arousal
SCL_SMOOTHING_S = 10.0       # the tonic level follows arousal this slowly
SCR_LATENCY_S = (1.0, 3.0)
SCR_TIMES_S = (0.75, 2.0, 20.0)  # rise and recovery time constants, kernel length
SCR_HEIGHT = 0.15            # median SCR, x the seat's gsr gain (the slow drift has 1x)
EMG_SMOOTHING_S = 0.5
MOVEMENT_SECONDS = (0.5, 2.0)
MOVEMENT_HEIGHT = 8.0        # median, units of the core EEG sd
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


def delayed(labels: np.ndarray, rows: int) -> np.ndarray:
    """`labels` shifted `rows` later (the first label fills the start): a late response."""
    if rows <= 0:
        return labels
    return np.concatenate([np.full(min(rows, len(labels)), labels[0]), labels[:-rows]])


def state_average(table: np.ndarray, labels: np.ndarray, seconds: float) -> np.ndarray:
    """A per-state table looked up for every row and ramped (a centred moving average)."""
    return moving_average(table[labels], seconds)


def eeg_core(profile: SeatProfile, labels: np.ndarray, rng: np.random.Generator,
             physiology: Physiology) -> np.ndarray:
    """(rows, 20) zero-mean EEG whose parts follow the state: variance shares (unit
    total) and, where the physiology sets them, power factors per part and channel.

    Mixed block by block so that no temporary is as large as the output."""
    rows = len(labels)
    gains = np.sqrt(state_average(physiology.eeg_band_shares, labels, EEG_SHARE_SMOOTHING_S))
    states = power = None
    if physiology.eeg_power is not None:
        states = state_average(np.eye(len(physiology.eeg_power)), labels, EEG_SHARE_SMOOTHING_S)
        power = physiology.eeg_power.reshape(len(physiology.eeg_power), -1)
    sources = [band_sources(rows, hz, rng) for hz in (THETA_HZ, profile.alpha_hz, BETA_HZ)]
    eeg = rng.standard_normal((rows, NUM_EEG))
    for start in range(0, rows, MIX_BLOCK_ROWS):
        block = slice(start, start + MIX_BLOCK_ROWS)
        part_gains = gains[block][:, :, None]  # (rows, part, 1 or channel)
        if power is not None:
            factors = np.sqrt(states[block] @ power)
            part_gains = part_gains * factors.reshape(-1, *physiology.eeg_power.shape[1:])
        eeg[block] *= part_gains[:, 3]
        for band, source in enumerate(sources):
            eeg[block] += (source[block] @ profile.mixing[band]) * part_gains[:, band]
    return eeg


def add_artefacts(eeg: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                  physiology: Physiology, extra: np.random.Generator) -> None:
    """Heavy tails and blinks, in place (units of the core sd).

    Electrode pops on every channel (a level jump held for 0.1-0.5 s, lognormal
    height, random sign) carry most of the variance, so the quartiles sit near
    +-0.4 SD as in the real files; eye blinks add a half-sine on frontal channels, at
    the state's blink rate (blinks are drawn at the highest rate and each kept with
    its state's share of it); rare single-sample spikes reach the +-1,200 uV clip.
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
    top_rate = physiology.blink_rate.max()
    keep = physiology.blink_rate / top_rate
    blinks = rng.poisson(BLINKS_PER_SECOND * top_rate * rows / SAMPLE_RATE_HZ)
    for start in rng.integers(0, rows, size=blinks):
        if keep[labels[start]] < 1.0 and extra.random() >= keep[labels[start]]:
            continue
        width = int(rng.integers(40, 100))
        shape = np.sin(np.linspace(0.0, np.pi, width))[: rows - start]
        height = rng.lognormal(np.log(6.0), 0.6)
        eeg[start:start + width, FRONTAL] += height * shape[:, None] * rng.uniform(0.5, 1.0, len(FRONTAL))
    spikes = rng.poisson(SPIKES_PER_SAMPLE * eeg.size)
    eeg[rng.integers(0, rows, spikes), rng.integers(0, NUM_EEG, spikes)] += rng.standard_t(2.0, spikes) * 15.0


def add_emg(eeg: np.ndarray, labels: np.ndarray, physiology: Physiology,
            extra: np.random.Generator) -> None:
    """Muscle activity, in place: first differences of white noise (power rising
    towards high frequencies, most of it above 20 Hz) at the state's sd, weighted per
    channel."""
    channels = np.flatnonzero(physiology.emg_channels)
    if not physiology.emg_sd.any() or channels.size == 0:
        return
    sd = state_average(physiology.emg_sd, labels, EMG_SMOOTHING_S)[:, None]
    weights = physiology.emg_channels[channels]
    for start in range(0, len(eeg), MIX_BLOCK_ROWS):
        block = slice(start, start + MIX_BLOCK_ROWS)
        rows = len(sd[block])
        noise = np.diff(extra.standard_normal((rows + 1, channels.size)), axis=0) / np.sqrt(2.0)
        eeg[block, channels] += noise * sd[block] * weights


def add_movements(eeg: np.ndarray, labels: np.ndarray, physiology: Physiology,
                  extra: np.random.Generator) -> None:
    """Movement artefacts, in place: slow half-sine deflections (0.5-2 s) on every
    channel, started at the state's rate per minute."""
    if not physiology.movements_per_minute.any():
        return
    rows = len(eeg)
    chance = physiology.movements_per_minute[labels] / (60.0 * SAMPLE_RATE_HZ)
    for start in np.flatnonzero(extra.random(rows) < chance):
        width = int(extra.uniform(*MOVEMENT_SECONDS) * SAMPLE_RATE_HZ)
        shape = np.sin(np.linspace(0.0, np.pi, width))[: rows - start]
        height = extra.lognormal(np.log(MOVEMENT_HEIGHT), 0.5) * extra.choice([-1.0, 1.0])
        eeg[start:start + width] += height * shape[:, None] * extra.uniform(0.3, 1.0, NUM_EEG)


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


def skin_responses(labels: np.ndarray, physiology: Physiology,
                   extra: np.random.Generator) -> np.ndarray:
    """(rows,) skin-conductance responses at the state's rate per minute, x the seat's
    gsr gain: each rises over ~1 s and recovers over several seconds (a difference of
    exponentials), 1-3 s after its cause."""
    rows = len(labels)
    response = np.zeros(rows)
    if not physiology.scr_per_minute.any():
        return response
    rise, recovery, length = SCR_TIMES_S
    t = np.arange(int(length * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    kernel = np.exp(-t / recovery) - np.exp(-t / rise)
    kernel /= kernel.max()
    chance = physiology.scr_per_minute[labels] / (60.0 * SAMPLE_RATE_HZ)
    for cause in np.flatnonzero(extra.random(rows) < chance):
        start = cause + int(extra.uniform(*SCR_LATENCY_S) * SAMPLE_RATE_HZ)
        if start < rows:
            shape = kernel[: rows - start]
            response[start:start + len(shape)] += extra.lognormal(np.log(SCR_HEIGHT), 0.5) * shape
    return response


def physiology_channels(profile: SeatProfile, labels: np.ndarray, rng: np.random.Generator,
                        physiology: Physiology, extra: np.random.Generator) -> np.ndarray:
    """(rows, 3): ecg, r, gsr with the state's heart rate, breathing rate and depth,
    and skin response."""
    rows = len(labels)
    heart = profile.heart_bpm * state_average(physiology.heart_rate, labels, RATE_SMOOTHING_S)
    heart *= 1.0 + 0.03 * slow_drift(rows, rng)
    ecg = profile.ecg_offset + profile.ecg_amplitude * ecg_wave(rhythm_phase(heart))
    ecg += rng.normal(0.0, 0.02 * abs(profile.ecg_amplitude), rows)
    if profile.ecg_amplitude < 0:
        ecg = np.minimum(ecg, 0.0)
    breath = profile.breath_per_min * state_average(physiology.breath_rate, labels, RATE_SMOOTHING_S)
    depth = profile.r_amplitude * state_average(physiology.breath_depth, labels, RATE_SMOOTHING_S)
    r = profile.r_level + depth * np.sin(2.0 * np.pi * rhythm_phase(breath))
    r += 0.05 * profile.r_amplitude * rng.standard_normal(rows)
    fast, slow = (state_average(physiology.gsr_arousal, labels, seconds) for seconds in GSR_RESPONSE_S)
    response = physiology.gsr_response_gain * (fast - slow)
    if physiology.scl_gain:
        response += physiology.scl_gain * state_average(physiology.gsr_arousal, labels, SCL_SMOOTHING_S)
    response += skin_responses(labels, physiology, extra)
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


def seat_signals(profile: SeatProfile, labels: np.ndarray, rng: np.random.Generator,
                 physiology: Physiology, extra: np.random.Generator) -> np.ndarray:
    """(rows, 23) float64 channels in CHANNELS order for one seat's session; `labels`
    are the pilot's response labels (see the module docstring)."""
    values = np.empty((len(labels), len(CHANNELS)))
    eeg = eeg_core(profile, labels, rng, physiology)
    add_artefacts(eeg, labels, rng, physiology, extra)
    add_emg(eeg, labels, physiology, extra)
    add_movements(eeg, labels, physiology, extra)
    eeg *= profile.eeg_sd_uv
    np.clip(eeg, -EEG_LIMIT_UV, EEG_LIMIT_UV, out=values[:, :NUM_EEG])
    del eeg
    values[:, NUM_EEG:] = physiology_channels(profile, labels, rng, physiology, extra)
    return round_like_real(values, rng)


def flatline_eeg(signals: np.ndarray, stretches: int, scale: float, rng: np.random.Generator) -> None:
    """In place: `stretches` spans (2-20 s at scale 1, >= 1 s) where some EEG channels read 0.0."""
    rows = len(signals)
    for _ in range(stretches):
        length = int(max(1.0, rng.uniform(2.0, 20.0) * scale) * SAMPLE_RATE_HZ)
        start = int(rng.integers(0, max(1, rows - length)))
        channels = rng.choice(NUM_EEG, size=int(rng.integers(1, NUM_EEG + 1)), replace=False)
        signals[start:start + length, np.sort(channels)] = 0.0
