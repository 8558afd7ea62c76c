"""Segments (the records) cut from sorted blocks, and the balanced validation set.

A block's rows are cut into runs wherever the split changes; each run is one
record.  Only the first run can start with carried context rows, and only those
of its own split: a run never carries context across a split boundary, so every
window's samples lie in one split (the purge).

Validation is balanced: every candidate window end of a validation record is
hashed with the seed; per class the n smallest hashes win, n = the rarest
class's count (optionally capped).  The records get the chosen ends back as
`window_ends` through a tiny side input: one hash threshold per class.
"""
from __future__ import annotations

from typing import Iterator, Optional

import apache_beam as beam
import numpy as np

from beam_preprocess import kaggle_schema as ks
from beam_preprocess.rows import RowBatch
from beam_preprocess.scaling import Scaler
from beam_preprocess.seeded_hash import hash_columns
from beam_preprocess.sessions import SortedBlock
from beam_preprocess.splits import SplitAssigner
from trainer.records import spec as record_spec
from trainer.records.spec import Segment

NUM_CLASSES = record_spec.NUM_CLASSES


class ValidationError(ValueError):
    """The validation split cannot be balanced over the classes."""


def block_segments(block: int, sorted_block: SortedBlock, assigner: SplitAssigner,
                   scaler: Optional[Scaler]) -> Iterator[tuple[str, Segment]]:
    """(split name, scaled Segment) for every run of one split in a block."""
    rows = sorted_block.rows
    if rows is None:
        return
    split = assigner.splits(rows)
    starts = np.flatnonzero(np.diff(split, prepend=-1))
    ends = np.append(starts[1:], len(rows))
    carried = sorted_block.context_rows
    for start, end in zip(starts, ends):
        if end <= carried:  # all context: already written by the previous block
            continue
        run: RowBatch = rows.take(slice(start, end))
        crew, seat = int(run.crew[0]), int(run.seat[0])
        signals = run.signals if scaler is None else scaler.apply(run.signals, crew, seat)
        yield record_spec.SPLITS[split[start]], Segment(
            crew=crew, seat=seat, experiment=run.experiment_name(0), block=block,
            context_rows=max(0, carried - int(start)), signals=signals, time=run.time,
            labels=run.labels, ids=run.ids)


def window_end_rows(segment: Segment, window: int) -> np.ndarray:
    """Rows of a record that end a window belonging to it."""
    return np.arange(segment.first_window_end(window), segment.num_rows)


def _end_hashes(segment: Segment, ends: np.ndarray, seed: int) -> np.ndarray:
    experiment = ks.EXPERIMENTS.index(segment.experiment)
    n = len(ends)
    return hash_columns(seed, np.full(n, segment.crew), np.full(n, experiment),
                        np.full(n, segment.seat), segment.time[ends])


def candidate_hashes(segment: Segment, window: int, seed: int) -> list[np.ndarray]:
    """Per class, the sorted hashes of the record's window ends of that class."""
    ends = window_end_rows(segment, window)
    hashes, labels = _end_hashes(segment, ends, seed), segment.labels[ends]
    return [np.sort(hashes[labels == c]) for c in range(NUM_CLASSES)]


class BalancedThresholds(beam.CombineFn):
    """Combines candidate hashes into one inclusive hash threshold per class."""

    def __init__(self, cap: Optional[int]):
        self._cap = cap

    def create_accumulator(self):
        return [[] for _ in range(NUM_CLASSES)]

    def add_input(self, acc, candidates):
        for parts, hashes in zip(acc, candidates):
            parts.append(hashes)
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        return [[self._smallest([a for acc in accs for a in acc[c]])]
                for c in range(NUM_CLASSES)]

    def _smallest(self, arrays) -> np.ndarray:
        merged = np.sort(np.concatenate([np.zeros(0, np.uint64), *arrays]))
        return merged if self._cap is None else merged[:self._cap]

    def extract_output(self, acc):
        acc = [self._smallest(parts) for parts in acc]
        counts = [len(a) for a in acc]
        present = [c for c in range(NUM_CLASSES) if counts[c] > 0]
        missing = [record_spec.CLASSES[c] for c in range(NUM_CLASSES) if counts[c] == 0]
        if missing and present:
            raise ValidationError(
                f"no validation window of class(es) {', '.join(missing)} (windows per "
                f"class: {dict(zip(record_spec.CLASSES, counts))}); use --holdout-crews "
                "with crews that have them, a larger --valid-fraction or more data")
        n = min(counts)
        return {record_spec.CLASSES[c]: (int(acc[c][n - 1]) if n else -1)
                for c in range(NUM_CLASSES)}


def select_window_ends(segment: Segment, window: int, seed: int,
                       thresholds: dict) -> np.ndarray:
    """The record's ends chosen for the balanced validation set (ascending)."""
    ends = window_end_rows(segment, window)
    hashes, labels = _end_hashes(segment, ends, seed), segment.labels[ends]
    chosen = np.zeros(len(ends), bool)
    for cls, name in enumerate(record_spec.CLASSES):
        if thresholds[name] >= 0:
            chosen |= (labels == cls) & (hashes <= np.uint64(thresholds[name]))
    return ends[chosen].astype(np.int64)


def segment_summary(segment: Segment, window: int) -> dict:
    """Counts a record adds to its split's manifest entry."""
    own = slice(segment.context_rows, None)
    summary = {"records": 1, "rows": segment.num_rows - segment.context_rows}
    ends = (segment.window_ends if segment.window_ends is not None
            else window_end_rows(segment, window))
    summary["windows"] = len(ends)
    if segment.labels is not None:
        summary["rows_per_class"] = np.bincount(segment.labels[own], minlength=NUM_CLASSES)
        summary["windows_per_class"] = np.bincount(segment.labels[ends], minlength=NUM_CLASSES)
    if segment.ids is not None and summary["rows"]:
        ids = segment.ids[own]
        summary["ids"] = {"count": len(ids), "min": int(ids.min()), "max": int(ids.max()),
                          "sum": int(ids.sum())}
    return summary
