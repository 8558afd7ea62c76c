"""The record format shared by `beam_preprocess` (writer) and `trainer` (reader).

Windows are not stored: stride-1 windows of length 256 would multiply the data by
256.  A record is one *segment*: a run of consecutive, time-sorted, scaled rows of
one session (crew, experiment, seat) that all belong to one split.  The trainer
cuts windows out of segments on the fly.

A segment may start with `context_rows` rows that were already written as the
tail of the previous segment of the same session and split.  They are there only
so that windows ending early in this segment are complete; they are never the
last row (the labelled row) of a window cut from this record.  Hence:

* a window of length `w` ends at row `e` of a record when
  `e >= max(context_rows, w - 1)`; its label is `labels[e]`;
* every row of a session is the labelled end of a window in exactly one record,
  except the first `w - 1` rows of a contiguous run (no full window exists);
* validation records carry `window_ends`: the balanced, seeded selection of
  windows (by end row) that the validation set consists of.

Arrays are stored as raw little-endian bytes (fast to decode with
`tf.io.decode_raw`).  Writing needs numpy only (trainer/records/example_proto.py encodes
the tf.train.Example, so the Beam job never imports TensorFlow); reading uses
TensorFlow.  This module must not import Apache Beam, nor TensorFlow at import.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from trainer.records import example_proto
from trainer.shared.errors import UserError

SCHEMA_VERSION = 1

# Signal channels, in the order of the Kaggle CSV header.
CHANNELS: tuple[str, ...] = (
    "eeg_fp1", "eeg_f7", "eeg_f8", "eeg_t4", "eeg_t6", "eeg_t5", "eeg_t3",
    "eeg_fp2", "eeg_o1", "eeg_p3", "eeg_pz", "eeg_f3", "eeg_fz", "eeg_f4",
    "eeg_c4", "eeg_p4", "eeg_poz", "eeg_c3", "eeg_cz", "eeg_o2",
    "ecg", "r", "gsr",
)
NUM_CHANNELS = len(CHANNELS)

# Cognitive states; a label is the index into this tuple.
CLASSES: tuple[str, ...] = ("A", "B", "C", "D")
NUM_CLASSES = len(CLASSES)

SPLITS: tuple[str, ...] = ("train", "valid", "test")

SAMPLE_RATE_HZ = 256
MANIFEST_NAME = "manifest.json"
QUARANTINE_PREFIX = "quarantine/bad_rows"
QUARANTINE_COLUMNS: tuple[str, ...] = ("file", "line", "reason", "raw")  # line 1 = header
EMPTY_LINE_REASON = "empty line"   # the quarantine reason of a blank line
# The first columns of the Kaggle test CSV (beam_preprocess.kaggle_schema builds its
# columns from these; predict reads them back from quarantined lines).
TEST_KEY_COLUMNS: tuple[str, ...] = ("id", "crew", "experiment", "time", "seat")

# Little-endian dtypes of the raw byte features.
SIGNALS_DTYPE = np.dtype("<f4")  # [num_rows, NUM_CHANNELS], row-major
TIME_DTYPE = np.dtype("<f8")     # [num_rows], seconds
LABELS_DTYPE = np.dtype("u1")    # [num_rows], index into CLASSES
IDS_DTYPE = np.dtype("<i8")      # [num_rows], the test CSV's `id`

# Feature keys of a segment record (a tf.train.Example).
CREW = "crew"                  # int64
SEAT = "seat"                  # int64
EXPERIMENT = "experiment"      # bytes: CA, DA, SS or LOFT
BLOCK = "block"                # int64: time block index within the session
NUM_ROWS = "num_rows"          # int64
CONTEXT_ROWS = "context_rows"  # int64
SIGNALS = "signals"            # bytes
TIME = "time"                  # bytes
LABELS = "labels"              # bytes; empty in test records
IDS = "ids"                    # bytes; empty in train/valid records
WINDOW_ENDS = "window_ends"    # int64 list; valid records only


def shard_prefix(split: str) -> str:
    """File prefix of a split's shards inside the output directory."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return f"{split}/part"


SHARD_SUFFIX = ".tfrecord.gz"  # GZIP-compressed TFRecord files


@dataclasses.dataclass
class Segment:
    """One record: consecutive sorted rows of one session in one split."""

    crew: int
    seat: int
    experiment: str
    block: int
    context_rows: int
    signals: np.ndarray            # float32 [n, NUM_CHANNELS]
    time: np.ndarray               # float64 [n]
    labels: Optional[np.ndarray] = None       # uint8 [n]
    ids: Optional[np.ndarray] = None          # int64 [n]
    window_ends: Optional[np.ndarray] = None  # int64 [k]

    @property
    def num_rows(self) -> int:
        return int(self.time.shape[0])

    def first_window_end(self, window: int) -> int:
        """Row index of the first window end that belongs to this record."""
        return max(self.context_rows, window - 1)


def _bytes(values: Optional[np.ndarray], dtype: np.dtype) -> bytes:
    if values is None:
        return b""
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def encode_segment(segment: Segment) -> bytes:
    """Serializes a segment as a tf.train.Example, without TensorFlow: the bytes of
    TensorFlow's `SerializeToString(deterministic=True)` (tests/test_record_encoding.py)."""
    n = segment.num_rows
    if segment.signals.shape != (n, NUM_CHANNELS):
        raise ValueError(
            f"signals shape {segment.signals.shape} != ({n}, {NUM_CHANNELS})")
    for name, arr in ((LABELS, segment.labels), (IDS, segment.ids)):
        if arr is not None and arr.shape != (n,):
            raise ValueError(f"{name} shape {arr.shape} != ({n},)")
    if not 0 <= segment.context_rows <= n:
        raise ValueError(f"context_rows {segment.context_rows} outside [0, {n}]")

    def ints(*values: int) -> example_proto.Feature:
        return example_proto.int64_feature(values)

    def raw(value: bytes) -> example_proto.Feature:
        return example_proto.bytes_feature([value])

    window_ends = (() if segment.window_ends is None
                   else np.asarray(segment.window_ends, dtype=np.int64).tolist())
    return example_proto.encode_example({
        CREW: ints(segment.crew),
        SEAT: ints(segment.seat),
        EXPERIMENT: raw(segment.experiment.encode()),
        BLOCK: ints(segment.block),
        NUM_ROWS: ints(n),
        CONTEXT_ROWS: ints(segment.context_rows),
        SIGNALS: raw(_bytes(segment.signals, SIGNALS_DTYPE)),
        TIME: raw(_bytes(segment.time, TIME_DTYPE)),
        LABELS: raw(_bytes(segment.labels, LABELS_DTYPE)),
        IDS: raw(_bytes(segment.ids, IDS_DTYPE)),
        WINDOW_ENDS: ints(*window_ends),
    })


def decode_segment(serialized: bytes) -> Segment:
    """Parses a serialized segment back into numpy arrays (no TensorFlow graph)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    f = example.features.feature

    def one_int(key: str) -> int:
        return int(f[key].int64_list.value[0])

    def array(key: str, dtype: np.dtype) -> Optional[np.ndarray]:
        raw = f[key].bytes_list.value[0]
        return np.frombuffer(raw, dtype=dtype) if raw else None

    n = one_int(NUM_ROWS)
    window_ends = list(f[WINDOW_ENDS].int64_list.value)
    return Segment(
        crew=one_int(CREW),
        seat=one_int(SEAT),
        experiment=f[EXPERIMENT].bytes_list.value[0].decode(),
        block=one_int(BLOCK),
        context_rows=one_int(CONTEXT_ROWS),
        signals=np.frombuffer(f[SIGNALS].bytes_list.value[0],
                              dtype=SIGNALS_DTYPE).reshape(n, NUM_CHANNELS),
        time=np.frombuffer(f[TIME].bytes_list.value[0], dtype=TIME_DTYPE),
        labels=array(LABELS, LABELS_DTYPE),
        ids=array(IDS, IDS_DTYPE),
        window_ends=np.asarray(window_ends, dtype=np.int64) if window_ends else None,
    )


def tf_feature_spec() -> dict:
    """Feature description for `tf.io.parse_example` on segment records."""
    import tensorflow as tf

    return {
        CREW: tf.io.FixedLenFeature([], tf.int64),
        SEAT: tf.io.FixedLenFeature([], tf.int64),
        EXPERIMENT: tf.io.FixedLenFeature([], tf.string),
        BLOCK: tf.io.FixedLenFeature([], tf.int64),
        NUM_ROWS: tf.io.FixedLenFeature([], tf.int64),
        CONTEXT_ROWS: tf.io.FixedLenFeature([], tf.int64),
        SIGNALS: tf.io.FixedLenFeature([], tf.string),
        TIME: tf.io.FixedLenFeature([], tf.string),
        LABELS: tf.io.FixedLenFeature([], tf.string),
        IDS: tf.io.FixedLenFeature([], tf.string),
        WINDOW_ENDS: tf.io.VarLenFeature(tf.int64),
    }


# manifest.json, written by beam_preprocess next to the shards.  Keys the trainer
# relies on (the writer may add more):
#   schema_version: int            channels: list[str]     classes: list[str]
#   window: int                    sample_rate_hz: int
#   splits: {split: {"records": int, "rows": int, "shards": [file names],
#                    "rows_per_class": {class: int},       (train/valid)
#                    "windows": int, "windows_per_class": {class: int},
#                    "ids": {"count", "min", "max", "sum"}}}  (test only)
#           ("windows" counts the windows the split offers: every full window
#            for train and test, the balanced selection for valid)
#   stats: {"method": "standard"|"robust", "by": "global"|"pilot",
#           "center": {key: [float]*C}, "scale": {key: [float]*C}}
#   rows: {"in": int, "written": int, "quarantined": int}
#   input_fingerprints, options, package_version, created (ISO 8601 UTC)


class IncompatibleDataError(UserError):
    """The data directory was written with another record format."""


def check_manifest(manifest: dict, source: str = "manifest.json") -> None:
    """Raises IncompatibleDataError unless the manifest matches this spec."""
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IncompatibleDataError(
            f"{source}: schema_version {version!r}, but this trainer reads "
            f"version {SCHEMA_VERSION}; re-run beam_preprocess with this release")
    if tuple(manifest.get("channels", ())) != CHANNELS:
        raise IncompatibleDataError(
            f"{source}: channels {manifest.get('channels')!r} differ from {list(CHANNELS)}")
    if tuple(manifest.get("classes", ())) != CLASSES:
        raise IncompatibleDataError(
            f"{source}: classes {manifest.get('classes')!r} differ from {list(CLASSES)}")
