"""A gradient-boosting peer: LightGBM on trailing rolling statistics of every channel.

The Kaggle leaders' approach, next to the LSTM.  Reads the segment records of a
beam_preprocess output with TensorFlow, drops each record's context rows (so every
row counts once) and reassembles each session's rows of each split in time order.
Every row is described by the trailing mean and sd, over 1 s and 4 s, of each of
the 23 channels and of its first difference (184 features); the rolling windows run
over one split's rows of one session, never into another split's.  LightGBM
(multiclass, natural class shares as the Kaggle leaders trained) fits every k-th
training row and stops early on the validation split's multi_logloss (the trainer's
split: time blocks or held-out crews), then predicts every test row.  With
`--lookahead S` a test row takes the prediction of the row S seconds later in its
session (the session's last row's near its end), as `trainer predict --lookahead`
does for the LSTM, so the two are compared at the same delay.

    python bench/peer_gbm.py --data DIR --out gbm.csv [--labels test_labels.csv]
                             [--row-step 8] [--trees 500] [--seed 0] [--json FILE]
                             [--lookahead 0]

Prints one JSON object: rows used, trees kept, the validation log loss (overall and
balanced = mean per class; also on the trainer's balanced validation windows, the
LSTM's figure), with --labels the test log losses, next to the constant
training-prior baseline, and the wall time.  LightGBM is a bench-only dependency
(`pip install -c requirements.lock ".[bench]"`).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import sys
import time
from typing import Optional

import numpy as np

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

from trainer.console import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402

from trainer import data  # noqa: E402
from trainer import record_spec as spec  # noqa: E402
from trainer.metrics import classification_metrics  # noqa: E402

ROLLING_ROWS = {"1s": spec.SAMPLE_RATE_HZ, "4s": 4 * spec.SAMPLE_RATE_HZ}
SERIES = (*spec.CHANNELS, *(f"d_{c}" for c in spec.CHANNELS))  # channels, first differences
STATS = ("mean", "sd")
FEATURE_NAMES = tuple(f"{s}_{stat}_{span}" for span in ROLLING_ROWS for stat in STATS
                      for s in SERIES)


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


def rolling_features(signals: np.ndarray) -> np.ndarray:
    """[n, 23] time-sorted rows -> float32 [n, len(FEATURE_NAMES)].

    Trailing means and population sds by cumulative sums (a window holds the rows
    so far until it is full, so every row has features; the first difference of
    the first row is 0).  Each series is centred on its mean before summing, which
    keeps the sums small and the variance free of cancellation; the mean is added
    back.  One group of 23 series at a time bounds the float64 temporaries.
    """
    n = signals.shape[0]
    x = signals.astype(np.float64)
    groups = (x, np.diff(x, axis=0, prepend=x[:1]))
    width = spec.NUM_CHANNELS
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    ends = np.arange(1, n + 1)
    for g, series in enumerate(groups):
        center = series.mean(axis=0)
        series = series - center
        sums = np.zeros((n + 1, width))
        np.cumsum(series, axis=0, out=sums[1:])
        squares = np.zeros((n + 1, width))
        np.cumsum(series * series, axis=0, out=squares[1:])
        for k, rows in enumerate(ROLLING_ROWS.values()):
            starts = np.maximum(ends - rows, 0)
            count = (ends - starts)[:, None]
            mean = (sums[1:] - sums[starts]) / count
            var = (squares[1:] - squares[starts]) / count - mean * mean
            column = (k * len(STATS) * 2 + g) * width  # layout of FEATURE_NAMES
            out[:, column:column + width] = mean + center
            out[:, column + 2 * width:column + 3 * width] = np.sqrt(np.maximum(var, 0.0))
    return out


def labelled_features(sessions: list[SessionRows], step: int
                      ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Features, labels and window-end mask of every `step`-th row of each session."""
    xs, ys, ends = [], [], []
    for s in sessions:
        xs.append(np.ascontiguousarray(rolling_features(s.signals)[::step]))
        ys.append(s.labels[::step])
        if s.window_end is not None:
            ends.append(s.window_end[::step])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ends) if ends else None


def fit(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray, valid_y: np.ndarray,
        seed: int, trees: int, early_stopping: int, threads: int, num_leaves: int,
        learning_rate: float) -> lgb.Booster:
    """Multiclass LightGBM, early-stopped on the validation rows' multi_logloss."""
    params = {
        "objective": "multiclass", "num_class": spec.NUM_CLASSES, "metric": "multi_logloss",
        "num_leaves": num_leaves, "learning_rate": learning_rate, "num_threads": threads,
        "seed": seed, "deterministic": True, "force_col_wise": True, "verbose": -1,
    }
    train_set = lgb.Dataset(train_x, label=train_y, feature_name=list(FEATURE_NAMES))
    valid_set = lgb.Dataset(valid_x, label=valid_y, reference=train_set)
    return lgb.train(params, train_set, num_boost_round=trees, valid_sets=[valid_set],
                     callbacks=[lgb.early_stopping(early_stopping, verbose=False)])


def predict_test(booster: lgb.Booster, sessions: list[SessionRows], lookahead_rows: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 probabilities) of every test row, one session's features at a time;
    a row takes the prediction of the row `lookahead_rows` later (at most the last)."""
    ids, probs = [], []
    for s in sessions:
        ids.append(s.ids)
        session_probs = booster.predict(rolling_features(s.signals),
                                        num_iteration=booster.best_iteration)
        later = np.minimum(np.arange(len(s.ids)) + lookahead_rows, len(s.ids) - 1)
        probs.append(session_probs[later].astype(np.float32))
    return np.concatenate(ids), np.concatenate(probs)


def write_submission(path: str, ids: np.ndarray, probs: np.ndarray,
                     chunk_rows: int = 1 << 20) -> None:
    """id,A,B,C,D lines, float32 as trainer.predict writes them (Arrow's CSV writer)."""
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
        row_step: int = 8, trees: int = 500, early_stopping: int = 20, threads: int = 2,
        num_leaves: int = 31, learning_rate: float = 0.1, lookahead: float = 0.0) -> dict:
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
    train_x, train_y, _ = labelled_features(train_sessions, row_step)
    del train_sessions
    valid_x, valid_y, valid_window_end = labelled_features(
        read_split(data_dir, manifest, "valid"), 1)

    fit_started = time.perf_counter()
    booster = fit(train_x, train_y, valid_x[::row_step], valid_y[::row_step], seed=seed,
                  trees=trees, early_stopping=early_stopping, threads=threads,
                  num_leaves=num_leaves, learning_rate=learning_rate)
    fit_seconds = time.perf_counter() - fit_started
    valid_probs = booster.predict(valid_x, num_iteration=booster.best_iteration)
    valid_scores = scores(valid_probs, valid_y)
    valid_scores["windows_balanced_log_loss"] = round(classification_metrics(
        valid_probs[valid_window_end], valid_y[valid_window_end])["balanced_log_loss"], 4)

    ids, probs = predict_test(booster, read_split(data_dir, manifest, "test"),
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
                        "threads": threads, "seed": seed, "lookahead_seconds": lookahead}
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
    parser.add_argument("--trees", type=int, default=500, help="most boosting rounds")
    parser.add_argument("--early-stopping", type=int, default=20,
                        help="stop after this many rounds without a better valid multi_logloss")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-leaves", type=int, default=31)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--lookahead", type=float, default=0.0, metavar="SECONDS",
                        help="a test row takes the prediction of the row this many seconds "
                             "later (default 0: causal)")
    args = parser.parse_args(argv)
    if args.row_step < 1 or args.trees < 1 or args.early_stopping < 1 or args.threads < 1:
        parser.error("--row-step, --trees, --early-stopping and --threads must be positive")
    if args.lookahead < 0:
        parser.error("--lookahead must be 0 (causal) or more seconds")
    try:
        result = run(args.data, labels=args.labels, out=args.out, seed=args.seed,
                     row_step=args.row_step, trees=args.trees,
                     early_stopping=args.early_stopping, threads=args.threads,
                     num_leaves=args.num_leaves, learning_rate=args.learning_rate,
                     lookahead=args.lookahead)
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
