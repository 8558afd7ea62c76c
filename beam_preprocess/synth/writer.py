"""CSV text of the stand-in files, in the broken row order of the real ones.

Inside a session the rows are in the order of their time *as text* ("0.0...",
"1.0...", "10.0...", "100.0..." ... "109.99609375", "11.00000000", ...), and the
two seats' rows are interleaved: the file is sorted by (crew, experiment,
time-as-text, seat).  Times are written with 8 decimals like the real files.

Formatting text is the generator's bottleneck, so rows are not formatted value by
value in Python.  Each chunk of rows becomes one uint8 matrix, one fixed-width
slot per field, filled from digit lookup tables; unused bytes are NUL and are
squeezed out at the end (`join_rows`).  Values are plain decimals with trailing
zeros dropped (`12.5`, `-0.00008`, `5.0`), i.e. Python's repr without exponents;
a value that is not exactly a number of `decimals` decimals (float noise such as
33.160301000000004) is written with its repr.
"""
from __future__ import annotations

import functools
import gzip
import os
from typing import BinaryIO, Sequence

import numpy as np

CHUNK_TIMES = 32_768  # time stamps formatted per chunk (x 2 seats rows)
INTEGER_DIGITS = 5    # |value| < 100,000
COMMA, POINT, MINUS = (ord(c) for c in ",.-")


@functools.lru_cache(maxsize=None)
def digit_table(digits: int, fraction: bool) -> np.ndarray:
    """Text of 0 .. 10**digits - 1 as `digits` bytes each (a void array), with NUL in
    place of leading zeros (integer part; "0" kept) or trailing zeros (fraction; the
    first digit kept)."""
    count = 10 ** digits
    text = np.char.zfill(np.arange(count).astype(f"S{digits}"), digits)
    table = text.view(np.uint8).reshape(count, digits).copy()
    nonzero = table != ord("0")
    if fraction:
        shown = np.maximum.accumulate(nonzero[:, ::-1], axis=1)[:, ::-1]
        shown[:, 0] = True
    else:
        shown = np.maximum.accumulate(nonzero, axis=1)
        shown[:, -1] = True
    table[~shown] = 0
    return table.view(f"V{digits}").ravel()


def decimal_block(values: np.ndarray, decimals: int) -> np.ndarray:
    """(n, k) floats as (n, k * width) uint8: ",value" for each column."""
    rows, columns = values.shape
    scale = 10.0 ** decimals
    scaled = np.rint(values * scale)
    magnitude = np.abs(scaled).astype(np.int64)
    whole, fraction = np.divmod(magnitude, 10 ** decimals)
    if rows and whole.max() >= 10 ** INTEGER_DIGITS:
        raise ValueError(f"value {np.abs(values).max()} too large for {INTEGER_DIGITS} integer digits")
    width = 2 + INTEGER_DIGITS + (1 + decimals if decimals else 0)
    out = np.zeros((rows, columns, width), np.uint8)
    out[..., 0] = COMMA
    out[..., 1] = np.where(scaled < 0, MINUS, 0)
    out[..., 2:2 + INTEGER_DIGITS] = digit_table(INTEGER_DIGITS, False)[whole].view(np.uint8).reshape(
        rows, columns, INTEGER_DIGITS)
    if decimals:
        out[..., 2 + INTEGER_DIGITS] = POINT
        out[..., 3 + INTEGER_DIGITS:] = digit_table(decimals, True)[fraction].view(np.uint8).reshape(
            rows, columns, decimals)
    inexact = scaled / scale != values
    if inexact.any():
        out = with_repr(out, values, inexact)
    return out.reshape(rows, -1)


def with_repr(out: np.ndarray, values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`out` widened so the `where` entries can hold ",repr(value)" instead."""
    rows, columns = np.nonzero(where)
    text = np.array([repr(v).encode("ascii") for v in values[rows, columns].tolist()])
    width = max(out.shape[2], 1 + text.itemsize)
    out = np.concatenate([out, np.zeros(out.shape[:2] + (width - out.shape[2],), np.uint8)], axis=2)
    out[rows, columns] = 0
    out[rows, columns, 0] = COMMA
    out[rows, columns, 1:1 + text.itemsize] = text.view(np.uint8).reshape(len(text), text.itemsize)
    return out


def text_block(strings: np.ndarray) -> np.ndarray:
    """A bytes ("S") array as an (n, itemsize) uint8 block (NUL padding is dropped later)."""
    return np.ascontiguousarray(strings).view(np.uint8).reshape(len(strings), strings.dtype.itemsize)


def join_rows(blocks: Sequence[np.ndarray]) -> bytes:
    """Concatenate blocks column-wise, row by row, dropping the NUL filler."""
    flat = np.concatenate(blocks, axis=1).ravel()
    return flat[flat != 0].tobytes()


def decimal_runs(decimals: Sequence[int]) -> list[tuple[int, int, int]]:
    """(start, stop, decimals) of the runs of columns with equal decimals."""
    runs, start = [], 0
    for index in range(1, len(decimals) + 1):
        if index == len(decimals) or decimals[index] != decimals[start]:
            runs.append((start, index, int(decimals[start])))
            start = index
    return runs


def time_text(times: np.ndarray) -> np.ndarray:
    """Times as the real files write them, 8 decimals (b"0.01171875"), as an S array."""
    return np.array(["%.8f" % t for t in times.tolist()], dtype="S")


def text_order(texts: np.ndarray) -> np.ndarray:
    """The permutation that sorts times as text (the real files' order)."""
    return np.argsort(texts, kind="stable")


class CsvSink:
    """A CSV output file (plain, or gzip without timestamp, hence reproducible bytes)
    that counts the data rows written."""

    def __init__(self, path: str, header: Sequence[str], compress: bool):
        self.path = path + (".gz" if compress else "")
        self.rows = 0
        self._raw: BinaryIO = open(self.path, "wb")
        self._out: BinaryIO = self._raw
        if compress:
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
        self._out.write((",".join(header) + "\n").encode("ascii"))

    def write_rows(self, text: bytes, rows: int) -> None:
        self._out.write(text)
        self.rows += rows

    def close(self) -> int:
        """Close the file; return its size in bytes."""
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
        return os.path.getsize(self.path)


def session_text(lead_prefix: str, times: np.ndarray, seat_signals: Sequence[np.ndarray],
                 seat_labels: Sequence[np.ndarray], classes: Sequence[str], decimals: Sequence[int],
                 first_id: int | None):
    """Yield (data text, label text, rows) of one session in file order, chunk by chunk.

    `lead_prefix` is e.g. "1,CA" or "1,LOFT"; `seat_labels[seat]` holds indices into
    `classes`.  Train (`first_id` None): each data line ends with its event and the
    label text is empty.  Test: data lines start with the id (the row number in file
    order, counted on from `first_id`) and carry no event; label lines are "id,event".
    """
    texts = time_text(times)
    order = text_order(texts)
    seats = len(seat_signals)
    seat_fields = np.array([f",{seat}".encode() for seat in range(seats)])
    prefix = np.frombuffer(f"{lead_prefix},".encode("ascii"), np.uint8)
    event_tails = np.array([f",{name}\n".encode() for name in classes])
    runs = decimal_runs(decimals)
    next_id = first_id
    for start in range(0, len(order), CHUNK_TIMES):
        rows = order[start:start + CHUNK_TIMES]
        count = len(rows) * seats
        values = np.stack([signals[rows] for signals in seat_signals], axis=1).reshape(count, -1)
        labels = np.stack([seat_labels_[rows] for seat_labels_ in seat_labels], axis=1).ravel()
        lead = [np.broadcast_to(prefix, (count, len(prefix))), text_block(np.repeat(texts[rows], seats)),
                text_block(np.tile(seat_fields, len(rows)))]
        fields = [decimal_block(values[:, a:b], d) for a, b, d in runs]
        if next_id is None:
            yield join_rows(lead + fields + [text_block(event_tails[labels])]), b"", count
            continue
        ids = text_block(np.arange(next_id, next_id + count).astype("S"))
        next_id += count
        newline = np.full((count, 1), ord("\n"), np.uint8)
        comma = np.full((count, 1), COMMA, np.uint8)
        yield (join_rows([ids, comma] + lead + fields + [newline]),
               join_rows([ids, text_block(event_tails[labels])]), count)
