"""Writes small synthetic data directories in the record format, for trainer tests.

The classes are learnable from one window: every channel carries a sinusoid whose
frequency depends on the class (equal amplitude, so equal variance) plus noise.
Labels come in blocks with skewed shares (A most, B least), like the real data,
so balancing matters.  Test sessions have a hole in time (a new contiguous run)
and a run shorter than a window, the edge cases of prediction.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.records import spec

CLASS_HZ = (3.0, 11.0, 23.0, 41.0)      # sinusoid frequency of A, B, C, D
CLASS_SHARES = (0.55, 0.05, 0.28, 0.12)  # label shares of the blocks
NOISE_SD = 0.5

# Train options for a model and schedule small enough for 2 busy cores that still
# learn the sine fixture.
TINY_TRAIN_ARGS = ["--lstm-units", "16", "--frame", "32", "--hop", "16", "--dropout", "0",
                   "--learning-rate", "0.01", "--global-batch-size", "32",
                   "--epochs", "3", "--steps-per-epoch", "40", "--summary-every-steps", "10"]


@dataclasses.dataclass(frozen=True)
class FixtureSpec:
    window: int = 64
    train_sessions: int = 6
    valid_sessions: int = 2
    test_sessions: int = 2
    rows_per_session: int = 3000
    segment_rows: int = 700        # new (non-context) rows per segment
    train_shards: int = 3
    valid_windows_per_class: int = 40  # per session
    short_run_rows: int = 40       # a test run shorter than a window
    label_block_rows: tuple[int, int] = (150, 500)  # label block lengths: [low, high)
    seed: int = 0
    schema_version: int = spec.SCHEMA_VERSION
    # "sine": learnable signals; "index": channel 0 = row index in the session,
    # channel 1 = label, to check which rows a window holds.
    signals: str = "sine"


@dataclasses.dataclass
class Session:
    crew: int
    seat: int
    experiment: str
    runs: list  # contiguous runs: (signals, time, labels, ids or None)


def _labels(rng: np.random.Generator, n: int, block_rows: tuple[int, int]) -> np.ndarray:
    """Blocks of block_rows rows with skewed classes; every class in at least one block."""
    starts = [0]
    while starts[-1] < n:
        starts.append(starts[-1] + int(rng.integers(*block_rows)))
    classes = rng.choice(spec.NUM_CLASSES, size=len(starts) - 1, p=CLASS_SHARES)
    missing = sorted(set(range(spec.NUM_CLASSES)) - set(classes.tolist()))
    classes[rng.choice(classes.size, len(missing), replace=False)] = missing
    labels = np.empty(n, dtype=np.uint8)
    for c, lo, hi in zip(classes, starts, starts[1:]):
        labels[lo:hi] = c
    return labels


def _signals(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Unit-variance sinusoids of the label's frequency plus noise.

    All channels share the sinusoid (one phase, drawn afresh for every label
    block): per-channel phases would give every block a fingerprint that a model
    can memorise instead of learning the frequency.
    """
    t = np.arange(labels.shape[0]) / spec.SAMPLE_RATE_HZ
    hz = np.asarray(CLASS_HZ)[labels][:, None]
    block = np.cumsum(np.r_[0, np.diff(labels.astype(np.int16)) != 0])
    phase = rng.uniform(0, 2 * np.pi, (block[-1] + 1, 1))[block]
    clean = np.sqrt(2.0) * np.sin(2 * np.pi * hz * t[:, None] + phase)
    noise = rng.normal(0.0, NOISE_SD, (labels.shape[0], spec.NUM_CHANNELS))
    return (clean + noise).astype(np.float32)


def _session(rng: np.random.Generator, fx: FixtureSpec, crew: int, seat: int,
             experiment: str, ids: Optional[np.ndarray]) -> Session:
    """A labelled session (one run), or with `ids` a test session of three runs."""
    n = fx.rows_per_session
    labels = _labels(rng, n, fx.label_block_rows)
    signals = _signals(rng, labels)
    if fx.signals == "index":
        signals[:, 0] = np.arange(n)
        signals[:, 1] = labels
    time = np.arange(n) / spec.SAMPLE_RATE_HZ
    if ids is None:
        return Session(crew, seat, experiment, [(signals, time, labels, None)])
    # A hole in time after 60% of the rows, then a run shorter than a window.
    hole_s = 10.0
    bounds = (0, int(n * 0.6), n - fx.short_run_rows, n)
    runs = [(signals[lo:hi], time[lo:hi] + k * hole_s, labels[lo:hi], ids[lo:hi])
            for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    return Session(crew, seat, experiment, runs)


def _segments(session: Session, fx: FixtureSpec, split: str,
              rng: np.random.Generator) -> list[spec.Segment]:
    """Cuts a session's runs into segments with up to window-1 context rows."""
    out = []
    block = 0
    for signals, time, labels, ids in session.runs:
        for start in range(0, signals.shape[0], fx.segment_rows):
            context = min(fx.window - 1, start)
            lo, hi = start - context, min(start + fx.segment_rows, signals.shape[0])
            seg = spec.Segment(
                crew=session.crew, seat=session.seat, experiment=session.experiment,
                block=block, context_rows=context, signals=signals[lo:hi], time=time[lo:hi])
            if split == "test":
                seg.ids = ids[lo:hi]
            else:
                seg.labels = labels[lo:hi]
            out.append(seg)
            block += 1
    if split == "valid":
        _select_balanced_ends(out, fx, rng)
    return out


def _select_balanced_ends(segments: list[spec.Segment], fx: FixtureSpec,
                          rng: np.random.Generator) -> None:
    """Sets window_ends: the same number of windows of each class in the session."""
    candidates = [(i, e) for i, seg in enumerate(segments)
                  for e in range(seg.first_window_end(fx.window), seg.num_rows)]
    labels = np.array([segments[i].labels[e] for i, e in candidates])
    chosen: list[list[int]] = [[] for _ in segments]
    for c in range(spec.NUM_CLASSES):
        of_class = np.flatnonzero(labels == c)
        for k in rng.choice(of_class, min(fx.valid_windows_per_class, of_class.size),
                            replace=False):
            i, e = candidates[k]
            chosen[i].append(e)
    for seg, ends in zip(segments, chosen):
        seg.window_ends = np.sort(np.asarray(ends, dtype=np.int64))  # may be empty


def _write_shards(out_dir: str, split: str, segments: list[spec.Segment], shards: int) -> list[str]:
    names = [f"part-{i:05d}-of-{shards:05d}{spec.SHARD_SUFFIX}" for i in range(shards)]
    split_dir = os.path.join(out_dir, os.path.dirname(spec.shard_prefix(split)))
    os.makedirs(split_dir, exist_ok=True)
    writers = [tf.io.TFRecordWriter(os.path.join(split_dir, n), options="GZIP") for n in names]
    for i, seg in enumerate(segments):
        writers[i % shards].write(spec.encode_segment(seg))
    for w in writers:
        w.close()
    return names


def _split_summary(segments: list[spec.Segment], names: list[str], window: int) -> dict:
    own = [(s, slice(s.context_rows, None)) for s in segments]
    rows = sum(s.num_rows - s.context_rows for s in segments)
    info = {"records": len(segments), "rows": rows, "shards": names}
    if segments[0].labels is not None:
        labels = np.concatenate([s.labels[sl] for s, sl in own])
        info["rows_per_class"] = {c: int((labels == i).sum()) for i, c in enumerate(spec.CLASSES)}
        if segments[0].window_ends is not None:
            ends_labels = np.concatenate([s.labels[s.window_ends] for s in segments])
        else:
            ends_labels = np.concatenate(
                [s.labels[s.first_window_end(window):] for s in segments])
        info["windows"] = int(ends_labels.size)
        info["windows_per_class"] = {c: int((ends_labels == i).sum())
                                     for i, c in enumerate(spec.CLASSES)}
    else:
        ids = np.concatenate([s.ids[sl] for s, sl in own])
        info["windows"] = int(sum(max(0, s.num_rows - s.first_window_end(window))
                                  for s in segments))
        info["ids"] = {"count": int(ids.size), "min": int(ids.min()), "max": int(ids.max()),
                       "sum": int(ids.sum())}
    return info


def write_fixture_data(out_dir: str, fx: Optional[FixtureSpec] = None) -> dict:
    """Writes shards, manifest.json and test_labels.csv (id,event); returns the manifest."""
    fx = fx or FixtureSpec()
    rng = np.random.default_rng(fx.seed)
    counts = {"train": fx.train_sessions, "valid": fx.valid_sessions, "test": fx.test_sessions}
    experiments = ("CA", "DA", "SS")
    # Test ids: a permutation, as the CSV's row order is not time order.
    test_ids = rng.permutation(fx.test_sessions * fx.rows_per_session).astype(np.int64)
    test_ids = test_ids.reshape(fx.test_sessions, fx.rows_per_session)
    splits, test_labels = {}, []
    crew = 1
    for split, sessions in counts.items():
        segments = []
        for k in range(sessions):
            session = _session(rng, fx, crew + k // 2, k % 2,
                               "LOFT" if split == "test" else experiments[k % 3],
                               test_ids[k] if split == "test" else None)
            if split == "test":
                test_labels += [(ids, labels) for _, _, labels, ids in session.runs]
            segments += _segments(session, fx, split, rng)
        crew += (sessions + 1) // 2
        shards = {"train": fx.train_shards, "valid": 1, "test": 2}[split]
        names = _write_shards(out_dir, split, segments, shards)
        splits[split] = _split_summary(segments, names, fx.window)
    manifest = {
        "schema_version": fx.schema_version,
        "channels": list(spec.CHANNELS),
        "classes": list(spec.CLASSES),
        "window": fx.window,
        "sample_rate_hz": spec.SAMPLE_RATE_HZ,
        "splits": splits,
        "stats": {"method": "standard", "by": "global",
                  "center": {"global": [0.0] * spec.NUM_CHANNELS},
                  "scale": {"global": [1.0] * spec.NUM_CHANNELS}},
        "rows": {"in": sum(s["rows"] for s in splits.values()),
                 "written": sum(s["rows"] for s in splits.values()), "quarantined": 0},
        "input_fingerprints": {"fixture": f"trainer_fixtures seed {fx.seed}"},
        "options": dataclasses.asdict(fx),
        "package_version": "fixture",
        "created": "2000-01-01T00:00:00Z",
    }
    with open(os.path.join(out_dir, spec.MANIFEST_NAME), "w") as f:
        json.dump(manifest, f, indent=2)
    with open(os.path.join(out_dir, "test_labels.csv"), "w") as f:
        f.write("id,event\n")
        for ids, labels in test_labels:
            for i, label in zip(ids, labels):
                f.write(f"{i},{spec.CLASSES[label]}\n")
    return manifest
