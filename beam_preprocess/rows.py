"""RowBatch: many parsed CSV rows as columns (never one Python object per row)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from beam_preprocess import kaggle_schema
from trainer.records import spec as record_spec

_LINE_BITS = 40  # file order key = file index << 40 | line number


def order_key(file_index: int, lines: np.ndarray) -> np.ndarray:
    """Sortable position of rows in the input: (file index, line number)."""
    return (np.int64(file_index) << _LINE_BITS) | lines.astype(np.int64)


def order_file_index(order: int) -> int:
    return int(order) >> _LINE_BITS


def order_line(order: int) -> int:
    return int(order) & ((1 << _LINE_BITS) - 1)


@dataclasses.dataclass
class RowBatch:
    """Parsed rows of one kind (train or test), column by column."""

    crew: np.ndarray        # int16
    experiment: np.ndarray  # uint8, index into kaggle_schema.EXPERIMENTS
    seat: np.ndarray        # int8
    time: np.ndarray        # float64 seconds
    signals: np.ndarray     # float32 [n, NUM_CHANNELS], raw (unscaled)
    order: np.ndarray       # int64 order_key: where the row is in the input
    labels: Optional[np.ndarray] = None  # uint8 index into CLASSES (train)
    ids: Optional[np.ndarray] = None     # int64 (test)

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def take(self, index) -> "RowBatch":
        """The rows at `index` (an index array, boolean mask or slice)."""
        return RowBatch(
            crew=self.crew[index], experiment=self.experiment[index],
            seat=self.seat[index], time=self.time[index],
            signals=self.signals[index], order=self.order[index],
            labels=None if self.labels is None else self.labels[index],
            ids=None if self.ids is None else self.ids[index])

    @staticmethod
    def concat(batches: Sequence["RowBatch"]) -> "RowBatch":
        if not batches:
            raise ValueError("concat needs at least one batch")
        if len(batches) == 1:
            return batches[0]

        def cat(name):
            parts = [getattr(b, name) for b in batches]
            return None if parts[0] is None else np.concatenate(parts)

        return RowBatch(**{f.name: cat(f.name) for f in dataclasses.fields(RowBatch)})

    def sorted_by_time(self) -> "RowBatch":
        """Rows sorted by time, ties in input order (first occurrence first)."""
        return self.take(np.lexsort((self.order, self.time)))

    def experiment_name(self, row: int) -> str:
        return kaggle_schema.EXPERIMENTS[int(self.experiment[row])]


def empty_signals() -> np.ndarray:
    return np.zeros((0, record_spec.NUM_CHANNELS), np.float32)


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """Start indices of runs of equal keys in rows already sorted by the keys."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def iter_groups(*keys: np.ndarray):
    """(first index, index array) per distinct key tuple, keys in sorted order."""
    index = np.lexsort(tuple(reversed(keys)))
    sorted_keys = [k[index] for k in keys]
    starts = group_starts(*sorted_keys)
    ends = np.append(starts[1:], len(index))
    for start, end in zip(starts, ends):
        yield tuple(k[start].item() for k in sorted_keys), index[start:end]
