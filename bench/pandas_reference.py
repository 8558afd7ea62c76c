"""The yardstick of bench_preprocess: beam_preprocess's work in one pandas/numpy process.

Same inputs, options and outputs as the Beam job, done in memory by one process:
read and validate the CSV (pandas' C parser in chunks, vectorised checks), sort
every session by numeric time and drop repeated times, choose the validation units,
compute the statistics from training rows, scale, cut the same segments (time
blocks, carried context, split runs), balance the validation windows and write
GZIP TFRecords with trainer.records.spec.  It reuses the project's Beam-free pure
parts (option parser, RowBatch, validation-unit choice, seeded hash, record
format) and never imports Apache Beam (checked at exit).

It is a yardstick, not a second product: only `--scaling standard --scale-by
global`, one file per --train/--test, and a line with too many fields or text in a
number column stops it (pandas' parser raises) instead of going to quarantine.

    python bench/pandas_reference.py --train train.csv --output ref-train
    python bench/pandas_reference.py --test test.csv --stats ref-train/reference.json --output ref-test

Writes OUTPUT/<split>/part-*.tfrecord.gz, OUTPUT/quarantine.csv (file,line,reason)
and OUTPUT/reference.json (counts per split in the manifest's form, stats, rows).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from beam_preprocess import kaggle_schema as ks  # noqa: E402
from beam_preprocess.options import PreprocessConfig, build_parser  # noqa: E402
from beam_preprocess.rows import RowBatch, group_starts, order_key, order_line  # noqa: E402
from beam_preprocess.seeded_hash import hash_columns  # noqa: E402
from beam_preprocess.splits import TRAIN, SplitAssigner, choose_validation_units, unit_histograms  # noqa: E402
from trainer.records import spec as record_spec  # noqa: E402
from trainer.records.spec import Segment  # noqa: E402

SUMMARY_NAME = "reference.json"
READ_CHUNK_ROWS = 1 << 19
COLUMNS = {"train": ks.TRAIN_COLUMNS, "test": ks.TEST_COLUMNS}
ALLOWED_EXPERIMENTS = {"train": ks.TRAIN_EXPERIMENTS, "test": (ks.TEST_EXPERIMENT,)}
NUM_CLASSES = record_spec.NUM_CLASSES


@dataclasses.dataclass
class Quarantine:
    """Refused rows: file, 1-based line (header = line 1), reason."""

    rows: list = dataclasses.field(default_factory=list)

    def add(self, path: str, lines: np.ndarray, reasons: Sequence[str]) -> None:
        self.rows.extend(zip([path] * len(lines), lines.tolist(), reasons))

    def write(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["file", "line", "reason"])
            out.writerows(self.rows)


def check_header(path: str, columns: Sequence[str]) -> None:
    found = list(pd.read_csv(path, nrows=0).columns)
    for position, expected in enumerate(columns):
        if position >= len(found) or found[position] != expected:
            raise ValueError(f"{path}: header column {position + 1} is "
                             f"{found[position] if position < len(found) else 'missing'!r}, "
                             f"expected {expected!r}")
    if len(found) > len(columns):
        raise ValueError(f"{path}: unexpected header column {found[len(columns)]!r}")


def _codes(series: pd.Series, allowed: Sequence[str]) -> np.ndarray:
    """Index of each value in `allowed`; -1 for anything else."""
    return series.cat.set_categories(list(allowed)).cat.codes.to_numpy(np.int16)


def validate(frame: pd.DataFrame, kind: str, lines: np.ndarray,
             file_index: int) -> tuple[RowBatch, np.ndarray, list[str]]:
    """Good rows as a RowBatch; the lines and reasons of the bad ones (first failed check)."""
    checks: list[tuple[np.ndarray, str]] = []
    numeric = [c for c in COLUMNS[kind] if c not in ("experiment", "event")]
    for column in numeric:
        checks.append((~np.isfinite(frame[column].to_numpy()),
                       f"missing or non-finite value in column {column}"))
    crew, seat = frame["crew"].to_numpy(), frame["seat"].to_numpy()
    checks.append((~np.isin(crew, ks.CREWS), "unknown crew"))
    checks.append((~np.isin(seat, ks.SEATS), "unknown seat"))
    experiment = _codes(frame["experiment"], ks.EXPERIMENTS)
    allowed = [ks.EXPERIMENTS.index(e) for e in ALLOWED_EXPERIMENTS[kind]]
    checks.append((~np.isin(experiment, allowed), f"unknown experiment in a {kind} file"))
    labels = ids = None
    if kind == "train":
        labels = _codes(frame["event"], ks.EVENTS)
        checks.append((labels < 0, "unknown event"))
    else:
        ids = frame["id"].to_numpy()
        checks.append((ids != np.floor(ids), "id is not an integer"))
    first_failed = np.full(len(frame), -1, np.int16)
    for number, (failed, _) in enumerate(checks):
        first_failed[failed & (first_failed < 0)] = number
    good = first_failed < 0
    rows = RowBatch(
        crew=crew[good].astype(np.int16), experiment=experiment[good].astype(np.uint8),
        seat=seat[good].astype(np.int8), time=frame["time"].to_numpy()[good],
        signals=frame[list(record_spec.CHANNELS)].to_numpy(np.float32)[good],
        order=order_key(file_index, lines[good]),
        labels=None if labels is None else labels[good].astype(np.uint8),
        ids=None if ids is None else ids[good].astype(np.int64))
    return rows, lines[~good], [checks[i][1] for i in first_failed[~good]]


def read_rows(path: str, kind: str, file_index: int,
              quarantine: Quarantine) -> tuple[RowBatch, int]:
    """Every valid row of a CSV (bad ones to `quarantine`), and the number of data lines."""
    columns = COLUMNS[kind]
    check_header(path, columns)
    dtypes = {c: ("category" if c in ("experiment", "event") else
                  np.float32 if c in record_spec.CHANNELS else np.float64) for c in columns}
    batches, lines_read = [], 0
    with pd.read_csv(path, dtype=dtypes, engine="c", chunksize=READ_CHUNK_ROWS,
                     skip_blank_lines=False, quoting=csv.QUOTE_NONE) as reader:
        for frame in reader:
            lines = np.arange(lines_read, lines_read + len(frame), dtype=np.int64) + 2
            lines_read += len(frame)
            rows, bad_lines, reasons = validate(frame, kind, lines, file_index)
            batches.append(rows)
            quarantine.add(path, bad_lines, reasons)
    if not batches:
        raise ValueError(f"{path}: header only, no data rows")
    return RowBatch.concat(batches), lines_read


def _session_change(rows: RowBatch) -> np.ndarray:
    """True where a row starts a new session (rows sorted by session)."""
    change = np.zeros(len(rows), bool)
    change[group_starts(rows.crew, rows.experiment, rows.seat)] = True
    return change


def sort_sessions(rows: RowBatch, path: str, quarantine: Quarantine) -> RowBatch:
    """Rows by (session, numeric time); a repeated time keeps its first line."""
    rows = rows.take(np.lexsort((rows.order, rows.time, rows.seat, rows.experiment, rows.crew)))
    repeated = np.zeros(len(rows), bool)
    repeated[1:] = (rows.time[1:] == rows.time[:-1]) & ~_session_change(rows)[1:]
    if repeated.any():
        lines = np.array([order_line(order) for order in rows.order[repeated]], np.int64)
        quarantine.add(path, lines, ["time repeats an earlier line in its session"] * len(lines))
        rows = rows.take(~repeated)
    return rows


def assign_splits(rows: RowBatch, config: PreprocessConfig) -> np.ndarray:
    """Split index per row, with the validation units Beam's ChooseValidation picks."""
    valid_units: frozenset = frozenset()
    if rows.labels is not None and not config.holdout_crews and config.valid_fraction > 0:
        histograms = unit_histograms(rows, config.valid_block_seconds, config.window)
        valid_units = choose_validation_units(histograms, config.valid_fraction, config.seed)
    return SplitAssigner(valid_units, config.holdout_crews, config.valid_block_seconds).splits(rows)


def standard_statistics(signals: np.ndarray, training: np.ndarray) -> dict:
    """Mean and population sd per channel over training rows (float64, two passes)."""
    x = signals[training]
    if not len(x):
        raise ValueError("no training rows: cannot compute scaling statistics")
    mean = x.mean(axis=0, dtype=np.float64)
    m2 = np.zeros_like(mean)
    for start in range(0, len(x), READ_CHUNK_ROWS):
        m2 += ((x[start:start + READ_CHUNK_ROWS].astype(np.float64) - mean) ** 2).sum(axis=0)
    sd = np.sqrt(m2 / len(x))
    sd = np.where(sd <= 1e-6 * np.maximum(1.0, np.abs(mean)), 1.0, sd)  # dead channel
    return {"method": "standard", "by": "global", "center": {"global": mean.tolist()},
            "scale": {"global": sd.tolist()}, "rows": {"global": len(x)}}


def cut_segments(rows: RowBatch, split: np.ndarray, stats: dict,
                 config: PreprocessConfig) -> Iterator[tuple[str, Segment]]:
    """Scaled segments: a new one at every session, time block or split change.

    A segment starting a block whose previous block ends in the same split carries
    the last window - 1 rows of that block that lie within carry_seconds of the
    boundary, as Beam's carry does.
    """
    center = np.asarray(stats["center"]["global"], np.float64)
    scale = np.asarray(stats["scale"]["global"], np.float64)
    block = np.floor(rows.time / config.block_seconds).astype(np.int64)
    new_session = _session_change(rows)
    new_block = new_session.copy()
    new_block[1:] |= block[1:] != block[:-1]
    starts = np.flatnonzero(new_block | np.append(True, split[1:] != split[:-1]))
    ends = np.append(starts[1:], len(rows))
    for j, (start, end) in enumerate(zip(starts, ends)):
        context = 0
        if (new_block[start] and not new_session[start]
                and block[start - 1] == block[start] - 1 and split[start - 1] == split[start]):
            previous = starts[j - 1]
            limit = block[start] * config.block_seconds - config.carry_seconds
            first = previous + np.searchsorted(rows.time[previous:start], limit)
            context = int(start - max(first, start - (config.window - 1)))
        rows_of = slice(start - context, end)
        yield record_spec.SPLITS[split[start]], Segment(
            crew=int(rows.crew[start]), seat=int(rows.seat[start]),
            experiment=rows.experiment_name(start), block=int(block[start]),
            context_rows=context,
            signals=((rows.signals[rows_of] - center) / scale).astype(np.float32),
            time=rows.time[rows_of],
            labels=None if rows.labels is None else rows.labels[rows_of],
            ids=None if rows.ids is None else rows.ids[rows_of])


def _window_ends(segment: Segment, window: int) -> np.ndarray:
    return np.arange(segment.first_window_end(window), segment.num_rows)


def balance_validation(segments: list[Segment], config: PreprocessConfig) -> list[Segment]:
    """Per class the n window ends of smallest seeded hash, n = the rarest class's count."""
    ends = [_window_ends(s, config.window) for s in segments]
    hashes = [hash_columns(config.seed, np.full(len(e), s.crew),
                           np.full(len(e), ks.EXPERIMENTS.index(s.experiment)),
                           np.full(len(e), s.seat), s.time[e]) for s, e in zip(segments, ends)]
    labels = [s.labels[e] for s, e in zip(segments, ends)]
    all_hashes = np.concatenate([np.zeros(0, np.uint64), *hashes])
    all_labels = np.concatenate([np.zeros(0, np.uint8), *labels])
    counts = np.bincount(all_labels, minlength=NUM_CLASSES)
    if counts.any() and not counts.all():
        raise ValueError(f"a class has no validation window: {counts.tolist()}")
    n = int(counts.min())
    if config.valid_windows_per_class is not None:
        n = min(n, config.valid_windows_per_class)
    thresholds = np.zeros(NUM_CLASSES, np.uint64)
    for cls in range(NUM_CLASSES):
        if n:
            thresholds[cls] = np.partition(all_hashes[all_labels == cls], n - 1)[n - 1]
    return [dataclasses.replace(s, window_ends=e[(h <= thresholds[l]) & (n > 0)])
            for s, e, h, l in zip(segments, ends, hashes, labels)]


class SplitWriter:
    """Round-robin GZIP TFRecord shards of one split, and its manifest counts."""

    def __init__(self, output: str, split: str, num_shards: int, window: int):
        import tensorflow as tf

        options = tf.io.TFRecordOptions(compression_type="GZIP")
        self.names = [f"{record_spec.shard_prefix(split)}-{i:05d}-of-{num_shards:05d}"
                      f"{record_spec.SHARD_SUFFIX}" for i in range(num_shards)]
        os.makedirs(os.path.join(output, split), exist_ok=True)
        self._writers = [tf.io.TFRecordWriter(os.path.join(output, name), options)
                         for name in self.names]
        self._window = window
        self.totals = {"records": 0, "rows": 0, "windows": 0}
        self._per_class = {"rows_per_class": np.zeros(NUM_CLASSES, np.int64),
                           "windows_per_class": np.zeros(NUM_CLASSES, np.int64)}
        self._ids: Optional[np.ndarray] = None

    def write(self, segment: Segment) -> None:
        self._writers[self.totals["records"] % len(self._writers)].write(
            record_spec.encode_segment(segment))
        own = slice(segment.context_rows, None)
        ends = (segment.window_ends if segment.window_ends is not None
                else _window_ends(segment, self._window))
        self.totals["records"] += 1
        self.totals["rows"] += segment.num_rows - segment.context_rows
        self.totals["windows"] += len(ends)
        if segment.labels is not None:
            self._per_class["rows_per_class"] += np.bincount(segment.labels[own], minlength=NUM_CLASSES)
            self._per_class["windows_per_class"] += np.bincount(segment.labels[ends],
                                                                minlength=NUM_CLASSES)
        if segment.ids is not None:
            ids = segment.ids[own]
            stats = np.array([len(ids), ids.min(), ids.max(), ids.sum()]) if len(ids) else None
            if stats is not None:
                self._ids = stats if self._ids is None else np.array([
                    self._ids[0] + stats[0], min(self._ids[1], stats[1]),
                    max(self._ids[2], stats[2]), self._ids[3] + stats[3]])

    def close(self) -> dict:
        for writer in self._writers:
            writer.close()
        summary = dict(self.totals, shards=self.names)
        if self._ids is not None:
            summary["ids"] = dict(zip(("count", "min", "max", "sum"), map(int, self._ids)))
        else:
            summary.update({key: dict(zip(record_spec.CLASSES, map(int, counts)))
                            for key, counts in self._per_class.items()})
        return summary


def run(config: PreprocessConfig) -> dict:
    """Does the whole job; returns the summary it wrote to OUTPUT/reference.json."""
    if config.scaling != "standard" or config.scale_by != "global":
        raise ValueError("the pandas reference implements --scaling standard --scale-by global only")
    if os.path.exists(config.output) and os.listdir(config.output):
        if not config.overwrite:
            raise FileExistsError(f"{config.output} is not empty; pass --overwrite")
        shutil.rmtree(config.output)
    os.makedirs(config.output, exist_ok=True)
    shards = max(1, config.num_shards)
    quarantine, writers, rows_in, stats = Quarantine(), {}, 0, None
    if config.stats:
        with open(config.stats) as f:
            stats = json.load(f)["stats"]

    def writer(split: str) -> SplitWriter:
        if split not in writers:
            writers[split] = SplitWriter(config.output, split, shards, config.window)
        return writers[split]

    for file_index, (kind, path) in enumerate((k, p) for k, p in (("train", config.train),
                                                                  ("test", config.test)) if p):
        rows, lines = read_rows(path, kind, file_index, quarantine)
        rows_in += lines
        rows = sort_sessions(rows, path, quarantine)
        split = assign_splits(rows, config)
        if kind == "train":
            stats = standard_statistics(rows.signals, split == TRAIN)
        valid = []
        for split_name, segment in cut_segments(rows, split, stats, config):
            if split_name == "valid":
                valid.append(segment)
            else:
                writer(split_name).write(segment)
        for segment in balance_validation(valid, config) if valid else ():
            writer("valid").write(segment)
        del rows, split, valid
    splits = {name: w.close() for name, w in sorted(writers.items())}
    written, quarantined = sum(s["rows"] for s in splits.values()), len(quarantine.rows)
    if rows_in != written + quarantined:
        raise RuntimeError(f"rows in {rows_in} != written {written} + quarantined {quarantined}")
    if rows_in and quarantined / rows_in > config.max_bad_fraction:
        raise RuntimeError(f"{quarantined} of {rows_in} rows are bad, more than "
                           f"--max-bad-fraction {config.max_bad_fraction}")
    quarantine.write(os.path.join(config.output, "quarantine.csv"))
    summary = {"window": config.window, "splits": splits, "stats": stats,
               "rows": {"in": rows_in, "written": written, "quarantined": quarantined},
               "options": dataclasses.asdict(config)}
    with open(os.path.join(config.output, SUMMARY_NAME), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    parser.prog = "python bench/pandas_reference.py"
    config = PreprocessConfig(**vars(parser.parse_args(argv)))
    try:
        config.check()
        summary = run(config)
    except (ValueError, FileExistsError, RuntimeError) as err:
        print(f"pandas_reference: error: {err}", file=sys.stderr)
        return 1
    if "apache_beam" in sys.modules:
        raise RuntimeError("the pandas reference must not import Apache Beam")
    print(json.dumps(summary["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
