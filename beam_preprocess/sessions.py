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
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from beam_preprocess.quarantine import BadRow
from beam_preprocess.rows import RowBatch, iter_groups, order_file_index, order_line

MAIN, CARRY = 0, 1


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


class SortedBlock:
    """A block's rows in time order, duplicates removed, with its carried context."""

    def __init__(self, values: Sequence[tuple[int, RowBatch]], window: int,
                 paths: Sequence[str]):
        main = [rows for role, rows in values if role == MAIN]
        carry = [rows for role, rows in values if role == CARRY]
        self.bad_rows: list[BadRow] = []
        self.context_rows = 0
        if not main:
            self.rows = None
            return
        rows = RowBatch.concat(main).sorted_by_time()
        dup = duplicate_mask(rows)
        if dup.any():
            self.bad_rows = duplicate_bad_rows(rows, dup, paths)
            rows = rows.take(~dup)
        self.main_rows = len(rows)
        if carry:
            context = RowBatch.concat(carry).sorted_by_time()
            context = context.take(~duplicate_mask(context))
            context = context.take(slice(max(0, len(context) - (window - 1)), None))
            self.context_rows = len(context)
            rows = RowBatch.concat([context, rows])
        self.rows = rows
