"""A gradient-boosting peer: LightGBM on causal physiological features of every row.

What a good Kaggle entrant would have built, next to the LSTM.  Reads the segment
records of a beam_preprocess output with TensorFlow, drops each record's context rows
(so every row counts once) and reassembles each session's rows of each split in time
order.  Every row is described by features of its session's rows up to it (never
after it; the windows run over one split's rows of one session, never into another
split's), chosen for where the states show in physiology rather than for one data set:

* rolling (184): trailing mean and sd, over 1 s and 4 s, of each of the 23 channels
  and of its first difference.  Alone they fail: channel levels (gsr, ecg) identify
  sessions more than states, and a state that moves the EEG's spectrum at a fixed
  total variance, or a rate, leaves them unchanged.
* eeg_bands (132): log power in delta 1-4, theta 4-8, alpha 8-13, beta 13-30 and
  gamma 30-60 Hz (causal Butterworth band-pass, squared, trailing 1-s and 4-s
  means), their 1-60 Hz total, and each band's log share of the total (trees cannot
  divide two features), pooled per scalp region (frontal, central, temporal,
  parietal, occipital, all) by the median over its channels, which a pop or a
  flat-line on one channel does not move.  Workload, attention and startle move
  band powers (theta, alpha, beta) and muscle or blink artefacts (gamma, frontal
  delta); shares see a spectrum change at any gain.
* autonomic (11): heart rate (ecg) and breathing rate (r), each the lag of the
  highest autocorrelation in a physiological range over a trailing frame (6 s,
  12 s), and how periodic that frame is; level changes of gsr, r and ecg (the 1-s
  mean minus the 2-s one, a slope, and minus the 10-s one, a phasic response such
  as a skin-conductance response); breathing depth (log sd of r over 8 s).
* vs_pilot (143): the eeg_bands and autonomic features minus their median over the
  pilot's (crew, seat) labelled rows (train and valid; features, never labels): a
  heart 15% faster or alpha weaker is a state only against that pilot's own level.
  The pilot's test rows use the same reference; a pilot with no labelled rows uses
  the median of all of them.

LightGBM (multiclass, natural class shares as the Kaggle leaders trained) fits every
k-th training row and stops early (patience 50) on the validation split's
multi_logloss (the trainer's split: time blocks or held-out crews), regularised
against fitting sessions (large leaves, L2, seeded feature and row bagging; the run is
deterministic for a seed), then predicts every test row one session at a time.  With
`--lookahead S` a test row takes the prediction of the row S seconds later in its
session (the session's last row's near its end), as `trainer predict --lookahead`
does for the LSTM, so the two are compared at the same delay.

    python bench/peer_gbm.py --data DIR --out gbm.csv [--labels test_labels.csv]
                             [--row-step 8] [--trees 1000] [--seed 0] [--json FILE]
                             [--lookahead 0]

Prints one JSON object: rows used, features per group, trees kept, the validation log
loss (overall and balanced = mean per class; also on the trainer's balanced
validation windows, the LSTM's figure), with --labels the test log losses, next to the
constant training-prior baseline, and the wall time.  LightGBM (with SciPy, which it
requires) is a bench-only dependency (`pip install -c requirements.lock ".[bench]"`).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import sys
import time
from typing import Iterable, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# LightGBM's OpenMP threads spin while they wait by default; on busy cores a
# spinning thread holds the core its partner needs (measured here: 2 threads took
# 12x as long as 1).  libgomp reads this once, when lightgbm loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import lightgbm as lgb  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
from scipy import signal as sps  # noqa: E402

from trainer.shared.console import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402

from trainer.data import datasets as data  # noqa: E402
from trainer.records import spec  # noqa: E402
from trainer.shared.metrics import classification_metrics  # noqa: E402

SECOND = spec.SAMPLE_RATE_HZ
ROLLING_ROWS = {"1s": SECOND, "4s": 4 * SECOND}
SERIES = (*spec.CHANNELS, *(f"d_{c}" for c in spec.CHANNELS))  # channels, first differences
STATS = ("mean", "sd")
ROLLING_NAMES = tuple(f"{s}_{stat}_{span}" for span in ROLLING_ROWS for stat in STATS
                      for s in SERIES)

# EEG rhythms (Hz), pooled over scalp regions (and all 20 channels) by the median of
# the channels' log powers, which a pop or flat-line on one channel does not move.
BANDS_HZ = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0),
            "beta": (13.0, 30.0), "gamma": (30.0, 60.0)}
REGIONS = {
    "frontal": ("eeg_fp1", "eeg_fp2", "eeg_f7", "eeg_f8", "eeg_f3", "eeg_f4", "eeg_fz"),
    "central": ("eeg_c3", "eeg_c4", "eeg_cz"),
    "temporal": ("eeg_t3", "eeg_t4", "eeg_t5", "eeg_t6"),
    "parietal": ("eeg_p3", "eeg_p4", "eeg_pz", "eeg_poz"),
    "occipital": ("eeg_o1", "eeg_o2"),
    "all": tuple(c for c in spec.CHANNELS if c.startswith("eeg_")),
}
EEG_COLUMNS = [spec.CHANNELS.index(c) for c in REGIONS["all"]]
POWER_FLOOR = 1e-6  # keeps the log of a flat-lined channel finite
BAND_NAMES = tuple(
    f"{region}_{band}_{kind}_{span}" for span in ROLLING_ROWS for kind in ("logpow", "share")
    for band in ((*BANDS_HZ, "total") if kind == "logpow" else BANDS_HZ) for region in REGIONS)


@dataclasses.dataclass(frozen=True)
class Rhythm:
    """A periodic channel whose rate `dominant_period` estimates over a trailing frame
    (seconds), refreshed every hop, among the periods a body can have."""

    channel: str
    frame_s: float
    hop_s: float
    lags_s: tuple[float, float]  # shortest and longest period looked for
    downsample: int               # rows averaged into one autocorrelation sample


# Up to 1.2 s, not longer: two beats of a fast heart must not pass for one slow beat.
RHYTHMS = {"heart": Rhythm("ecg", 6.0, 0.25, (0.3, 1.2), 4),       # 50-200 beats/min
           "breath": Rhythm("r", 12.0, 0.5, (1.5, 8.0), 16)}        # 7.5-40 breaths/min
# Slow-level changes (skin conductance, breathing baseline, ecg baseline): the 1-s
# mean minus the trailing 2-s (a slope) and 10-s means (a phasic response).
LEVEL_CHANGE_ROWS = {"2s": 2 * SECOND, "10s": 10 * SECOND}
LEVEL_CHANNELS = ("gsr", "r", "ecg")
AUTONOMIC_NAMES = (
    *(f"{name}_{stat}" for name in RHYTHMS for stat in ("per_min", "periodicity")),
    *(f"{c}_1s_minus_{span}" for c in LEVEL_CHANNELS for span in LEVEL_CHANGE_ROWS),
    "r_depth_8s")

SESSION_GROUPS = {"rolling": ROLLING_NAMES, "eeg_bands": BAND_NAMES, "autonomic": AUTONOMIC_NAMES}
SESSION_NAMES = tuple(name for names in SESSION_GROUPS.values() for name in names)
# Band and autonomic features again, minus the pilot's median (`pilot_reference`):
# a 15% faster heart is a state only against that pilot's own rate.
REFERENCED = tuple(SESSION_NAMES.index(name) for name in (*BAND_NAMES, *AUTONOMIC_NAMES))
FEATURE_GROUPS = {**SESSION_GROUPS,
                  "vs_pilot": tuple(f"{SESSION_NAMES[i]}_vs_pilot" for i in REFERENCED)}
FEATURE_NAMES = tuple(name for names in FEATURE_GROUPS.values() for name in names)


class ArgumentError(ValueError):
    """A file named on the command line (other than the data directory) is unusable."""


@dataclasses.dataclass
class SessionRows:
    """One session's rows of one split, in time order, every row once."""

    key: tuple[int, str, int]             # crew, experiment, seat
    signals: np.ndarray                   # float32 [n, NUM_CHANNELS]
    labels: Optional[np.ndarray] = None   # uint8 [n]; train and valid
    ids: Optional[np.ndarray] = None      # int64 [n]; test
    window_end: Optional[np.ndarray] = None  # bool [n]; valid: a trainer validation window ends here


def read_split(data_dir: str, manifest: dict, split: str) -> list[SessionRows]:
    """A split's sessions (sorted by key), context rows dropped, rows sorted by time."""
    pieces: dict[tuple, list[tuple[np.ndarray, SessionRows]]] = collections.defaultdict(list)
    records = tf.data.TFRecordDataset(data.shard_paths(data_dir, manifest, split),
                                      compression_type="GZIP")
    for record in records.as_numpy_iterator():
        seg = spec.decode_segment(record)
        own = slice(seg.context_rows, None)
        key = (seg.crew, seg.experiment, seg.seat)
        window_end = None
        if split == "valid":
            window_end = np.zeros(seg.num_rows, dtype=bool)
            if seg.window_ends is not None:
                window_end[seg.window_ends] = True
            window_end = window_end[own]
        pieces[key].append((seg.time[own], SessionRows(
            key, seg.signals[own], labels=None if seg.labels is None else seg.labels[own],
            ids=None if seg.ids is None else seg.ids[own], window_end=window_end)))
    sessions = [_assemble(key, parts) for key, parts in sorted(pieces.items())]
    rows = sum(s.signals.shape[0] for s in sessions)
    expected = manifest["splits"][split]["rows"]
    if rows != expected:
        raise data.DataError(f"{data_dir}: split {split!r} holds {rows} rows, "
                             f"the manifest says {expected}")
    return sessions


def _assemble(key: tuple[int, str, int], parts: list[tuple[np.ndarray, SessionRows]]
              ) -> SessionRows:
    """Concatenates a session's record pieces (time, rows) and sorts the rows by time."""
    times = np.concatenate([t for t, _ in parts])
    order = np.argsort(times, kind="stable")
    if np.any(np.diff(times[order]) <= 0):
        raise data.DataError(f"session {key}: a time occurs in more than one row")

    def joined(name: str) -> Optional[np.ndarray]:
        arrays = [getattr(rows, name) for _, rows in parts]
        return None if arrays[0] is None else np.concatenate(arrays)[order]

    return SessionRows(key, joined("signals"), labels=joined("labels"), ids=joined("ids"),
                       window_end=joined("window_end"))


def window_sums(cumulative: np.ndarray, rows: int) -> np.ndarray:
    """Sums over the trailing `rows` rows (fewer at the start) from [n + 1, w] cumulative
    sums that start with a zero row; slices, not a gather, so it streams through memory."""
    n = cumulative.shape[0] - 1
    out = np.empty((n, cumulative.shape[1]))
    head = min(rows, n)
    np.subtract(cumulative[1:head + 1], cumulative[0], out=out[:head])
    np.subtract(cumulative[head + 1:], cumulative[1:n - head + 1], out=out[head:])
    return out


def trailing_moments(series: np.ndarray, windows: Iterable[int], with_sd: bool = True
                     ) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
    """(mean, population sd or None) over the trailing rows of each window, per column.

    By cumulative sums, so a window costs the same at any length: a window holds
    the rows so far until it is full, so every row has a value.  Each column is
    centred on its mean before summing, which keeps the sums small and the
    variance free of cancellation; the mean is added back.  float64 [n, w] in.
    """
    n = series.shape[0]
    center = series.mean(axis=0)
    centred = series - center
    sums = np.zeros((n + 1, series.shape[1]))
    np.cumsum(centred, axis=0, out=sums[1:])
    if with_sd:
        squares = np.zeros_like(sums)
        np.cumsum(centred * centred, axis=0, out=squares[1:])
    del centred
    out = []
    for rows in windows:
        count = np.minimum(np.arange(1, n + 1), rows)[:, None]
        mean = window_sums(sums, rows) / count
        sd = None
        if with_sd:
            var = window_sums(squares, rows) / count - mean * mean
            sd = np.sqrt(np.maximum(var, 0.0))
        out.append((mean + center, sd))
    return out


def rolling_features(signals: np.ndarray) -> np.ndarray:
    """[n, 23] time-sorted rows -> float32 [n, len(ROLLING_NAMES)]: trailing means and
    sds of every channel and of its first difference (0 at the first row)."""
    x = signals.astype(np.float64)
    width = spec.NUM_CHANNELS
    out = np.empty((x.shape[0], len(ROLLING_NAMES)), dtype=np.float32)
    for g, series in enumerate((x, np.diff(x, axis=0, prepend=x[:1]))):
        for k, (mean, sd) in enumerate(trailing_moments(series, ROLLING_ROWS.values())):
            column = (k * len(STATS) * 2 + g) * width  # layout of ROLLING_NAMES
            out[:, column:column + width] = mean
            out[:, column + 2 * width:column + 3 * width] = sd
    return out


def causal_filter(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sosfilt along rows, started in the steady state of the first row's value, so a
    channel's offset does not ring into the first seconds of a session."""
    zi = sps.sosfilt_zi(sos)[:, :, None] * x[:1]
    return sps.sosfilt(sos, x, axis=0, zi=zi)[0]


def band_features(signals: np.ndarray) -> np.ndarray:
    """[n, 23] -> float32 [n, len(BAND_NAMES)]: EEG band powers, absolute and relative.

    Per channel, a causal band-pass (4th-order Butterworth) squared and averaged
    over the trailing 1 s and 4 s gives the band's power; its log and its log share
    of the 1-60 Hz total (trees cannot divide two features) are pooled per region
    by the median over the region's channels.
    """
    eeg = signals[:, EEG_COLUMNS].astype(np.float64)
    log_power = {}  # (band, span) -> [n, 20]
    for band, (low, high) in BANDS_HZ.items():
        sos = sps.butter(2, (low, high), btype="bandpass", fs=SECOND, output="sos")
        filtered = causal_filter(sos, eeg)
        means = trailing_moments(filtered * filtered, ROLLING_ROWS.values(), with_sd=False)
        for span, (power, _) in zip(ROLLING_ROWS, means):
            log_power[band, span] = np.log(np.maximum(power, 0.0) + POWER_FLOOR)
    for span in ROLLING_ROWS:
        log_power["total", span] = np.log(sum(np.exp(log_power[band, span])
                                              for band in BANDS_HZ))
    members = {region: [REGIONS["all"].index(c) for c in channels]
               for region, channels in REGIONS.items()}
    columns = []
    for span in ROLLING_ROWS:  # layout of BAND_NAMES
        for band in (*BANDS_HZ, "total"):
            columns += [np.median(log_power[band, span][:, m], axis=1)
                        for m in members.values()]
        for band in BANDS_HZ:
            share = log_power[band, span] - log_power["total", span]
            columns += [np.median(share[:, m], axis=1) for m in members.values()]
    return np.stack(columns, axis=1).astype(np.float32)


def dominant_period(x: np.ndarray, rhythm: Rhythm) -> tuple[np.ndarray, np.ndarray]:
    """(period in s, periodicity) of a rhythm at every row of a [n] series; NaN until
    the first frame is full and where the frame is flat (a dead channel).

    The lag of the highest autocorrelation within the rhythm's range, refined by a
    parabola, over the trailing frame; harmonics of a peaky wave (ecg) agree on the
    period, where counting crossings would not.  A row takes the latest frame that
    ends at or before it (causal); periodicity is that autocorrelation (0-1).
    """
    n = x.shape[0]
    down = rhythm.downsample
    blocks = x[:n // down * down].astype(np.float64).reshape(-1, down).mean(axis=1)
    length = int(rhythm.frame_s * SECOND / down)
    hop = max(1, int(rhythm.hop_s * SECOND / down))
    period = np.full(n, np.nan)
    strength = np.full(n, np.nan)
    if blocks.size < length:
        return period, strength
    frames = sliding_window_view(blocks, length)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=2 * length, axis=1)
    acf = np.fft.irfft(spectrum * spectrum.conj(), n=2 * length, axis=1)[:, :length]
    energy = acf[:, :1].copy()
    acf /= np.where(energy > 0, energy, np.inf)
    low, high = (int(s * SECOND / down) for s in rhythm.lags_s)
    best = low + np.argmax(acf[:, low:high + 1], axis=1)
    rows = np.arange(best.size)
    before, peak, after = (acf[rows, np.clip(best + d, 0, length - 1)] for d in (-1, 0, 1))
    curvature = before - 2.0 * peak + after
    shift = np.clip(0.5 * (before - after) / np.where(curvature < 0, curvature, -np.inf),
                    -0.5, 0.5)
    frame_period = np.where(energy[:, 0] > 0, (best + shift) * down / SECOND, np.nan)
    frame_end = (rows * hop + length) * down - 1  # last row of each frame
    latest = np.searchsorted(frame_end, np.arange(n), side="right") - 1
    known = latest >= 0
    period[known] = frame_period[latest[known]]
    strength[known] = np.where(energy[latest[known], 0] > 0, peak[latest[known]], np.nan)
    return period, strength


def autonomic_features(signals: np.ndarray) -> np.ndarray:
    """[n, 23] -> float32 [n, len(AUTONOMIC_NAMES)]: heart and breathing rates and
    their regularity, level changes of gsr, r and ecg, and breathing depth.

    The states move rates and phasic responses, which trailing means and sds of the
    raw channels do not see; levels differ more between sessions than between states.
    """
    columns = []
    for rhythm in RHYTHMS.values():
        period, strength = dominant_period(signals[:, spec.CHANNELS.index(rhythm.channel)],
                                           rhythm)
        columns += [60.0 / period, strength]
    levels = signals[:, [spec.CHANNELS.index(c) for c in LEVEL_CHANNELS]].astype(np.float64)
    (recent, _), *longer = trailing_moments(levels, (SECOND, *LEVEL_CHANGE_ROWS.values()),
                                            with_sd=False)
    for c in range(len(LEVEL_CHANNELS)):
        columns += [recent[:, c] - mean[:, c] for mean, _ in longer]
    r = signals[:, [spec.CHANNELS.index("r")]].astype(np.float64)
    (_, depth), = trailing_moments(r, (8 * SECOND,))
    columns.append(np.log(depth[:, 0] + POWER_FLOOR))
    return np.stack(columns, axis=1).astype(np.float32)


FEATURE_FUNCTIONS = {"rolling": rolling_features, "eeg_bands": band_features,
                     "autonomic": autonomic_features}


def session_features(signals: np.ndarray) -> np.ndarray:
    """[n, 23] time-sorted rows of one session -> float32 [n, len(SESSION_NAMES)]."""
    return np.concatenate([FEATURE_FUNCTIONS[group](signals) for group in SESSION_GROUPS],
                          axis=1)


def pilot_reference(features: np.ndarray, pilots: np.ndarray
                    ) -> dict[Optional[tuple[int, int]], np.ndarray]:
    """The median of the REFERENCED features of each pilot's (crew, seat) labelled rows,
    and under None the median of all of them (for a pilot with no labelled rows).

    Features only, never labels: the same shift serves the pilot's training, validation
    and test rows, so it carries no state.  NaN (a rate before its first frame) is skipped.
    """
    referenced = features[:, REFERENCED]
    reference = {None: np.nanmedian(referenced, axis=0)}
    for pilot in np.unique(pilots, axis=0):
        mine = (pilots == pilot).all(axis=1)
        reference[tuple(int(v) for v in pilot)] = np.nanmedian(referenced[mine], axis=0)
    return reference


def with_reference(features: np.ndarray, pilot: tuple[int, int],
                   reference: dict[Optional[tuple[int, int]], np.ndarray]) -> np.ndarray:
    """[n, len(SESSION_NAMES)] features of one pilot's rows -> [n, len(FEATURE_NAMES)]."""
    shift = reference.get(pilot, reference[None])
    return np.concatenate([features, features[:, REFERENCED] - shift.astype(np.float32)],
                          axis=1)


@dataclasses.dataclass
class LabelledRows:
    """Session features (not yet referenced) of the rows a split contributes."""

    features: np.ndarray                 # float32 [n, len(SESSION_NAMES)]
    labels: np.ndarray                   # uint8 [n]
    pilots: np.ndarray                   # int64 [n, 2]: crew, seat
    window_end: Optional[np.ndarray]     # bool [n]; valid


def labelled_features(sessions: list[SessionRows], step: int) -> LabelledRows:
    """Session features, labels, pilots and window-end mask of every `step`-th row."""
    xs, ys, pilots, ends = [], [], [], []
    for s in sessions:
        xs.append(np.ascontiguousarray(session_features(s.signals)[::step]))
        ys.append(s.labels[::step])
        pilots.append(np.tile([s.key[0], s.key[2]], (ys[-1].size, 1)))
        if s.window_end is not None:
            ends.append(s.window_end[::step])
    return LabelledRows(np.concatenate(xs), np.concatenate(ys), np.concatenate(pilots),
                        np.concatenate(ends) if ends else None)


def referenced_features(rows: LabelledRows,
                        reference: dict[Optional[tuple[int, int]], np.ndarray]) -> np.ndarray:
    """[n, len(FEATURE_NAMES)]: each pilot's rows with their pilot-referenced features."""
    out = np.empty((rows.labels.size, len(FEATURE_NAMES)), dtype=np.float32)
    for pilot in np.unique(rows.pilots, axis=0):
        mine = (rows.pilots == pilot).all(axis=1)
        out[mine] = with_reference(rows.features[mine], tuple(int(v) for v in pilot), reference)
    return out


def fit(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray, valid_y: np.ndarray,
        seed: int, trees: int, early_stopping: int, threads: int, num_leaves: int,
        learning_rate: float, min_data_in_leaf: int = 200) -> lgb.Booster:
    """Multiclass LightGBM, early-stopped on the validation rows' multi_logloss.

    Regularised against what identifies a session rather than a state (its levels):
    large leaves, L2 on leaf values, and every tree sees half the features and 70%
    of the rows (seeded, so a run repeats exactly).
    """
    params = {
        "objective": "multiclass", "num_class": spec.NUM_CLASSES, "metric": "multi_logloss",
        "num_leaves": num_leaves, "learning_rate": learning_rate, "num_threads": threads,
        "min_data_in_leaf": min_data_in_leaf, "lambda_l2": 10.0, "feature_fraction": 0.5,
        "bagging_fraction": 0.7, "bagging_freq": 1,
        "seed": seed, "deterministic": True, "force_col_wise": True, "verbose": -1,
    }
    train_set = lgb.Dataset(train_x, label=train_y, feature_name=list(FEATURE_NAMES))
    valid_set = lgb.Dataset(valid_x, label=valid_y, reference=train_set)
    return lgb.train(params, train_set, num_boost_round=trees, valid_sets=[valid_set],
                     callbacks=[lgb.early_stopping(early_stopping, verbose=False)])


def predict_test(booster: lgb.Booster, sessions: list[SessionRows],
                 reference: dict[Optional[tuple[int, int]], np.ndarray],
                 lookahead_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 probabilities) of every test row, one session's features at a time;
    a row takes the prediction of the row `lookahead_rows` later (at most the last)."""
    ids, probs = [], []
    for s in sessions:
        ids.append(s.ids)
        features = with_reference(session_features(s.signals), (s.key[0], s.key[2]), reference)
        session_probs = booster.predict(features, num_iteration=booster.best_iteration)
        later = np.minimum(np.arange(len(s.ids)) + lookahead_rows, len(s.ids) - 1)
        probs.append(session_probs[later].astype(np.float32))
    return np.concatenate(ids), np.concatenate(probs)


def write_submission(path: str, ids: np.ndarray, probs: np.ndarray,
                     chunk_rows: int = 1 << 20) -> None:
    """id,A,B,C,D lines, float32 as trainer.prediction.predict writes them (Arrow's CSV writer)."""
    with open(path, "wb") as f:
        f.write(("id," + ",".join(spec.CLASSES) + "\n").encode())
        for lo in range(0, ids.size, chunk_rows):
            columns = {"id": ids[lo:lo + chunk_rows],
                       **{c: probs[lo:lo + chunk_rows, i] for i, c in enumerate(spec.CLASSES)}}
            pa_csv.write_csv(pa.table(columns), f, pa_csv.WriteOptions(include_header=False))


def check_test_ids(ids: np.ndarray, manifest: dict) -> None:
    """Every test id once, as many and the same sum as the manifest lists."""
    expected = manifest["splits"]["test"]["ids"]
    if np.unique(ids).size != ids.size:
        raise data.DataError(f"{ids.size - np.unique(ids).size} test ids occur twice")
    if (ids.size, int(ids.sum())) != (expected["count"], expected["sum"]):
        raise data.DataError(f"predicted {ids.size} test ids (sum {int(ids.sum())}), the "
                             f"manifest lists {expected['count']} (sum {expected['sum']})")


def read_labels(path: str) -> pd.Series:
    """Test labels (id,event) as class indices by id."""
    if not os.path.isfile(path):
        raise ArgumentError(f"{path}: labels file not found")
    frame = pd.read_csv(path, engine="pyarrow")
    if list(frame.columns) != ["id", "event"]:
        raise ArgumentError(f"{path}: columns {list(frame.columns)}, expected ['id', 'event']")
    labels = frame["event"].map({c: i for i, c in enumerate(spec.CLASSES)})
    if labels.isna().any() or frame["id"].duplicated().any():
        raise ArgumentError(f"{path}: events outside {list(spec.CLASSES)} or duplicate ids")
    return pd.Series(labels.to_numpy(dtype=np.int64), index=frame["id"].to_numpy())


def align_labels(labels: pd.Series, ids: np.ndarray, path: str) -> np.ndarray:
    """The label of each predicted id; the labelled and the predicted ids must be the same."""
    where = labels.index.get_indexer(ids)
    missing = int((where < 0).sum())
    if missing or labels.size != ids.size:
        extra = labels.size - (ids.size - missing)
        raise ArgumentError(f"{path}: {missing} test ids unlabelled, "
                            f"{extra} labelled ids not in the test split")
    return labels.to_numpy()[where]


def scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Log loss overall, balanced (mean per class) and per class, rounded."""
    m = classification_metrics(probs, labels)
    return {"log_loss": round(m["log_loss"], 4),
            "balanced_log_loss": round(m["balanced_log_loss"], 4),
            "per_class_log_loss": {c: None if v["log_loss"] is None else round(v["log_loss"], 4)
                                   for c, v in m["per_class"].items()}}


def validation_kind(manifest: dict) -> str:
    crews = manifest.get("options", {}).get("holdout_crews")
    return f"held-out crews {crews}" if crews else "time blocks"


def run(data_dir: str, labels: Optional[str] = None, out: Optional[str] = None, seed: int = 0,
        row_step: int = 8, trees: int = 1000, early_stopping: int = 50, threads: int = 2,
        num_leaves: int = 31, learning_rate: float = 0.05, lookahead: float = 0.0,
        min_data_in_leaf: int = 200) -> dict:
    """Trains on `data_dir`, predicts its test rows (to `out`), scores them against `labels`."""
    started = time.perf_counter()
    manifest = data.read_manifest(data_dir)
    for split in spec.SPLITS:  # fail before the work, not after it
        data.shard_paths(data_dir, manifest, split)
    truth = read_labels(labels) if labels else None
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ArgumentError(f"{out}: its directory does not exist")

    train_sessions = read_split(data_dir, manifest, "train")
    train_counts = np.bincount(np.concatenate([s.labels for s in train_sessions]),
                               minlength=spec.NUM_CLASSES)
    prior = train_counts / train_counts.sum()
    train = labelled_features(train_sessions, row_step)
    del train_sessions
    valid = labelled_features(read_split(data_dir, manifest, "valid"), 1)
    reference = pilot_reference(np.concatenate([train.features, valid.features[::row_step]]),
                                np.concatenate([train.pilots, valid.pilots[::row_step]]))
    train_x, valid_x = (referenced_features(rows, reference) for rows in (train, valid))
    train_y, valid_y, valid_window_end = train.labels, valid.labels, valid.window_end
    del train, valid

    fit_started = time.perf_counter()
    booster = fit(train_x, train_y, valid_x[::row_step], valid_y[::row_step], seed=seed,
                  trees=trees, early_stopping=early_stopping, threads=threads,
                  num_leaves=num_leaves, learning_rate=learning_rate,
                  min_data_in_leaf=min_data_in_leaf)
    fit_seconds = time.perf_counter() - fit_started
    valid_probs = booster.predict(valid_x, num_iteration=booster.best_iteration)
    valid_scores = scores(valid_probs, valid_y)
    valid_scores["windows_balanced_log_loss"] = round(classification_metrics(
        valid_probs[valid_window_end], valid_y[valid_window_end])["balanced_log_loss"], 4)

    ids, probs = predict_test(booster, read_split(data_dir, manifest, "test"), reference,
                              round(lookahead * spec.SAMPLE_RATE_HZ))
    check_test_ids(ids, manifest)
    if out:
        write_submission(out, ids, probs)
    result = {
        "data": data_dir,
        "validation": validation_kind(manifest),
        "rows": {"train": int(train_y.size), "train_total": int(train_counts.sum()),
                 "valid_early_stopping": int(valid_y[::row_step].size),
                 "valid": int(valid_y.size), "valid_windows": int(valid_window_end.sum()),
                 "test": int(ids.size)},
        "features": len(FEATURE_NAMES),
        "feature_groups": {group: len(names) for group, names in FEATURE_GROUPS.items()},
        "trees": booster.best_iteration,
        "valid": valid_scores,
        "prior": {"shares": dict(zip(spec.CLASSES, np.round(prior, 4).tolist())),
                  "valid": scores(np.tile(prior, (valid_y.size, 1)), valid_y)},
    }
    if truth is not None:
        test_labels = align_labels(truth, ids, labels)
        result["test"] = scores(probs, test_labels)
        result["prior"]["test"] = scores(np.tile(prior, (ids.size, 1)), test_labels)
    result["params"] = {"row_step": row_step, "max_trees": trees, "early_stopping": early_stopping,
                        "num_leaves": num_leaves, "learning_rate": learning_rate,
                        "min_data_in_leaf": min_data_in_leaf, "threads": threads, "seed": seed,
                        "lookahead_seconds": lookahead}
    result["seconds"] = {"fit": round(fit_seconds, 1),
                         "total": round(time.perf_counter() - started, 1)}
    result["out"] = out
    return result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="beam_preprocess output directory")
    parser.add_argument("--labels", help="test labels CSV (id,event) to score the predictions")
    parser.add_argument("--out", help="submission CSV to write (id,A,B,C,D)")
    parser.add_argument("--json", help="also write the JSON summary here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row-step", type=int, default=8,
                        help="train (and early-stop) on every k-th row of each session")
    parser.add_argument("--trees", type=int, default=1000, help="most boosting rounds")
    parser.add_argument("--early-stopping", type=int, default=50,
                        help="stop after this many rounds without a better valid multi_logloss")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-leaves", type=int, default=31)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--min-data-in-leaf", type=int, default=200,
                        help="fewest training rows in a leaf (against fitting one session)")
    parser.add_argument("--lookahead", type=float, default=0.0, metavar="SECONDS",
                        help="a test row takes the prediction of the row this many seconds "
                             "later (default 0: causal)")
    args = parser.parse_args(argv)
    if min(args.row_step, args.trees, args.early_stopping, args.threads,
           args.min_data_in_leaf) < 1:
        parser.error("--row-step, --trees, --early-stopping, --threads and --min-data-in-leaf "
                     "must be positive")
    if args.lookahead < 0:
        parser.error("--lookahead must be 0 (causal) or more seconds")
    try:
        result = run(args.data, labels=args.labels, out=args.out, seed=args.seed,
                     row_step=args.row_step, trees=args.trees,
                     early_stopping=args.early_stopping, threads=args.threads,
                     num_leaves=args.num_leaves, learning_rate=args.learning_rate,
                     lookahead=args.lookahead, min_data_in_leaf=args.min_data_in_leaf)
    except (data.DataError, spec.IncompatibleDataError, ArgumentError) as e:
        print(f"peer_gbm: {e}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
