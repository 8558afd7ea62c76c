"""Sessions cut into time blocks, sorted, de-duplicated, with context carried over.

No worker holds a whole session: rows are grouped by (crew, experiment, seat,
block), block = floor(time / block_seconds).  A window ending early in a block
needs the window - 1 samples before it, so every row in the last `carry_seconds`
of a block is also sent to the next block as a *carry* candidate; the next block
keeps the last window - 1 of them as context rows.  This needs no second pass.

Time holes (test sessions have them) do not break a run: windows may span a hole
(the time feature shows it).  Only where a hole longer than about carry_seconds -
window / 256 s falls right before a block start does the block get fewer than
window - 1 context rows; its first rows then end no window, like the first rows
of a session.  The manifest's window counts are exact either way.

Duplicate times within a session: the first occurrence in file order is kept,
the others are quarantined by the block that owns them (their raw line text is
read back from the file afterwards: rows do not carry it).

Repeated test ids are found over all test files (an id is unique in the whole
test set, and a repeat may be in another session or file): the ids and order keys
of the test rows are grouped into ID_BUCKETS buckets by id, each bucket finds its
repeats, and the (small) table of them reaches every block as a side input.  The
first row of an id in file and line order is kept; the block that owns a repeat
quarantines it like a repeated time, before looking for repeated times (a row is
quarantined once), and drops it from the context it carries.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from beam_preprocess.quarantine import BadRow
from beam_preprocess.rows import (RowBatch, group_starts, iter_groups, order_file_index,
                                  order_line)

MAIN, CARRY = 0, 1
# Test ids are checked for repeats in this many groups (id modulo ID_BUCKETS): enough to
# spread the work, and at most this many parts per parsed batch.
ID_BUCKETS = 64


def session_block_keys(batch: RowBatch, block_seconds: float,
                       carry_seconds: float) -> Iterator[tuple[tuple, tuple[int, RowBatch]]]:
    """((crew, experiment, seat, block), (MAIN or CARRY, rows)) for a parsed batch."""
    blocks = np.floor(batch.time / block_seconds).astype(np.int64)
    carried = batch.time >= (blocks + 1) * block_seconds - carry_seconds
    for (crew, experiment, seat, block), index in iter_groups(
            batch.crew, batch.experiment, batch.seat, blocks):
        rows = batch.take(index)
        yield (crew, experiment, seat, block), (MAIN, rows)
        tail = carried[index]
        if tail.any():
            yield (crew, experiment, seat, block + 1), (CARRY, rows.take(tail))


def duplicate_mask(sorted_rows: RowBatch) -> np.ndarray:
    """True for rows whose time equals the previous row's (rows sorted by time, order)."""
    dup = np.zeros(len(sorted_rows), bool)
    dup[1:] = sorted_rows.time[1:] == sorted_rows.time[:-1]
    return dup


def duplicate_bad_rows(sorted_rows: RowBatch, dup: np.ndarray,
                       paths: Sequence[str]) -> list[BadRow]:
    bad = []
    for i in np.flatnonzero(dup):
        first = i - 1
        while dup[first]:
            first -= 1
        order, first_order = int(sorted_rows.order[i]), int(sorted_rows.order[first])
        bad.append(BadRow(
            paths[order_file_index(order)], order_line(order),
            f"time {float(sorted_rows.time[i])!r} repeats line {order_line(first_order)} "
            f"in session crew {int(sorted_rows.crew[i])} experiment "
            f"{sorted_rows.experiment_name(i)} seat {int(sorted_rows.seat[i])}",
            None))  # the line as read: filled in by quarantine.RecoverRawLines
    return bad


def id_bucket_parts(batch: RowBatch) -> Iterator[tuple[int, np.ndarray]]:
    """(bucket, [2, n] int64 array of ids and order keys) per id bucket of a test batch."""
    for (bucket,), index in iter_groups(batch.ids % ID_BUCKETS):
        yield bucket, np.stack([batch.ids[index], batch.order[index]])


def repeated_ids(parts: Iterable[np.ndarray]) -> np.ndarray:
    """[k, 3] int64 rows (order key of a repeat, order key of its id's first row, id):
    the rows of `parts` (id_bucket_parts of one bucket, in any order) whose id a row
    before them in file and line order has."""
    ids, orders = np.concatenate([np.zeros((2, 0), np.int64), *parts], axis=1)
    index = np.lexsort((orders, ids))
    ids, orders = ids[index], orders[index]
    starts = group_starts(ids)
    first = np.repeat(orders[starts], np.diff(np.append(starts, len(ids))))
    repeat = orders != first   # order keys are unique: all but each id's first row
    return np.stack([orders[repeat], first[repeat], ids[repeat]], axis=1)


class RepeatedIds:
    """The test rows whose id an earlier row has (repeated_ids over every bucket),
    looked up by order key."""

    def __init__(self, table: np.ndarray):
        self._table = table[np.argsort(table[:, 0])]

    @classmethod
    def from_parts(cls, tables: Iterable[np.ndarray]) -> "RepeatedIds":
        return cls(np.concatenate([np.zeros((0, 3), np.int64), *tables]))

    def __len__(self) -> int:
        return len(self._table)

    def remove(self, rows: RowBatch, paths: Sequence[str]) -> tuple[RowBatch, list[BadRow]]:
        """`rows` without the repeats among them, and those as bad rows (their line text
        is read back later, as for repeated times)."""
        if rows.ids is None or not len(self._table):
            return rows, []
        at = np.minimum(np.searchsorted(self._table[:, 0], rows.order), len(self._table) - 1)
        hit = self._table[at, 0] == rows.order
        bad = []
        for order, first, row_id in self._table[at[hit]].tolist():
            file, first_file = order_file_index(order), order_file_index(first)
            where = "" if first_file == file else f" of {paths[first_file]}"
            bad.append(BadRow(paths[file], order_line(order),
                              f"id {row_id} repeats line {order_line(first)}{where}", None))
        return (rows.take(~hit) if bad else rows), bad


class SortedBlock:
    """A block's rows in time order, duplicates removed, with its carried context.

    With `repeats`, rows of a repeated test id are quarantined (main rows) or dropped
    (carried rows: the block that owns them quarantines them) first."""

    def __init__(self, values: Sequence[tuple[int, RowBatch]], window: int,
                 paths: Sequence[str], repeats: Optional[RepeatedIds] = None):
        main = [rows for role, rows in values if role == MAIN]
        carry = [rows for role, rows in values if role == CARRY]
        self.bad_rows: list[BadRow] = []
        self.context_rows = 0
        if repeats is not None and len(repeats):
            kept = [repeats.remove(rows, paths) for rows in main]
            main = [rows for rows, _ in kept if len(rows)]
            self.bad_rows = [bad for _, repeated in kept for bad in repeated]
            carry = [rows for rows in (repeats.remove(c, paths)[0] for c in carry) if len(rows)]
        if not main:
            self.rows = None
            return
        rows = RowBatch.concat(main).sorted_by_time()
        dup = duplicate_mask(rows)
        if dup.any():
            self.bad_rows += duplicate_bad_rows(rows, dup, paths)
            rows = rows.take(~dup)
        self.main_rows = len(rows)
        if carry:
            context = RowBatch.concat(carry).sorted_by_time()
            context = context.take(~duplicate_mask(context))
            context = context.take(slice(max(0, len(context) - (window - 1)), None))
            self.context_rows = len(context)
            rows = RowBatch.concat([context, rows])
        self.rows = rows
