"""Batched, vectorised parsing and validation of CSV line chunks.

A chunk of thousands of lines is parsed in one call by pyarrow's CSV reader
(multi-threaded, without the GIL, so the job's other worker thread runs
meanwhile).  Where that does not give one clean row per line (a line of another
field count or an empty one, an empty field, nan or inf in any spelling, text in
a number column, an unknown experiment or event name), the lines are checked for
their field counts with numpy, and those of the right shape are parsed again: by
pyarrow if they are clean rows now, else by pandas' C engine, whose reading of
such values decides the quarantine reasons, as before pyarrow.  Both read every
finite number as the same float64 (correctly rounded), so a chunk's rows do not
depend on which of them read it.  Only the lines that fail get a per-line
diagnosis (a reason string and their raw text) and go to quarantine.

A file whose last line has no line end may have been cut inside that line (a
number cut short still parses), so that line is quarantined as suspect whatever
it holds, and the file is reported (UNTERMINATED output: the manifest and log).
"""
from __future__ import annotations

import csv
import io
from typing import Callable, NamedTuple, Optional, Sequence

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from beam_preprocess import kaggle_schema as ks
from beam_preprocess import progress
from beam_preprocess.csv_source import InputFile, LineChunk, count_newlines
from beam_preprocess.quarantine import RAW_TEXT_LIMIT, BadRow
from beam_preprocess.rows import RowBatch, order_key
from trainer.records import spec as record_spec

COLUMNS = {"train": ks.TRAIN_COLUMNS, "test": ks.TEST_COLUMNS}
ALLOWED_EXPERIMENTS = {"train": ks.TRAIN_EXPERIMENTS, "test": (ks.TEST_EXPERIMENT,)}
_TEXT_COLUMNS = ("experiment", "event")
NO_FINAL_LINE_END = "suspect: the file's last line has no line end, so it may be cut short"

BAD_ROWS = "bad_rows"
ROWS_IN = "rows_in"
UNTERMINATED = "unterminated"  # (file, line) of a last line without line end

ENGINES = ("arrow", "pandas")  # "arrow": pyarrow where it can, else pandas; "pandas": always

_ARROW_PARSE = pa_csv.ParseOptions(  # as pandas' C engine with QUOTE_NONE: no quoting at all
    delimiter=",", quote_char=False, double_quote=False, escape_char=False,
    newlines_in_values=False, ignore_empty_lines=False)
# Only an empty field is null (pandas has many NA spellings; a chunk with any is
# re-read by pandas); no text is a boolean.
_ARROW_CONVERT = {
    kind: pa_csv.ConvertOptions(
        column_types={c: pa.string() if c in _TEXT_COLUMNS else pa.float64() for c in columns},
        null_values=[""], true_values=[], false_values=[], strings_can_be_null=False,
        quoted_strings_can_be_null=False, check_utf8=True)
    for kind, columns in COLUMNS.items()}
_KNOWN = {"experiment": pa.array(ks.EXPERIMENTS), "event": pa.array(ks.EVENTS)}


def _line_bounds(buf: np.ndarray, unterminated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline not included) of every line in buf; with
    `unterminated`, the bytes after the last newline (maybe none) are a last line."""
    ends = np.flatnonzero(buf == ord("\n"))
    if unterminated:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    return starts, ends


def _field_counts(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    commas = np.flatnonzero(buf == ord(","))
    return np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1


class _Columns(NamedTuple):
    """A chunk's good-shape lines parsed: float64 per numeric column, the raw text where
    a number column held no number, and the index of each text column's value in its
    known names (-1: anything else), with a function giving a value's repr."""

    values: dict
    not_numbers: dict
    codes: dict                       # "experiment"[, "event"] -> int16 codes
    text: dict                        # the same -> Callable[[int], str]


def _read_frame(data: bytes, columns: Sequence[str], all_text: bool) -> pd.DataFrame:
    dtypes = {c: (str if all_text or c in _TEXT_COLUMNS else np.float64) for c in columns}
    return pd.read_csv(
        io.BytesIO(data), header=None, names=list(columns), dtype=dtypes,
        engine="c", quoting=csv.QUOTE_NONE, skip_blank_lines=False,
        low_memory=False)


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[dict, dict]:
    """Float64 arrays per numeric column, and the raw text where it was not a number."""
    values, not_numbers = {}, {}
    for column in columns:
        series = frame[column]
        if series.dtype == np.float64:
            values[column] = series.to_numpy()
            continue
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
        text_mask = np.isnan(numbers) & series.notna().to_numpy()
        values[column] = numbers
        not_numbers[column] = (text_mask, series.to_numpy(object))
    return values, not_numbers


def _codes(series: pd.Series, allowed: Sequence[str]) -> np.ndarray:
    """Index of each value in `allowed`, -1 for anything else (missing included)."""
    return pd.Categorical(series, categories=list(allowed)).codes.astype(np.int16)


def _pandas_columns(data: bytes, kind: str, lines: int) -> _Columns:
    """The lines parsed by pandas' C engine (text in a number column: re-read as text)."""
    columns = COLUMNS[kind]
    try:
        frame = _read_frame(data, columns, all_text=False)
    except ValueError:  # text in a number column: re-read as text to find the lines
        frame = _read_frame(data, columns, all_text=True)
    if len(frame) != lines:
        raise _RowCountError(len(frame))
    values, not_numbers = _numeric(frame, [c for c in columns if c not in _TEXT_COLUMNS])
    codes, text = {}, {}
    for column, known in (("experiment", ks.EXPERIMENTS), ("event", ks.EVENTS)):
        if column in columns:
            series = frame[column]
            codes[column] = _codes(series, known)
            text[column] = lambda i, s=series: repr(s.iloc[i])
    return _Columns(values, not_numbers, codes, text)


def _arrow_columns(data: bytes, kind: str, lines: int) -> Optional[_Columns]:
    """The lines parsed by pyarrow, or None where pandas must read them: anything but
    finite numbers in every number column and known names in the text columns (a
    value pyarrow refuses, an empty field, nan or inf in any spelling, an unknown
    name), or a row count other than `lines`."""
    columns = COLUMNS[kind]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=list(columns), use_threads=True),
            parse_options=_ARROW_PARSE, convert_options=_ARROW_CONVERT[kind])
    except pa.ArrowException:
        return None
    if table.num_rows != lines:
        return None
    values, codes, text = {}, {}, {}
    for column in columns:
        array = table.column(column)
        if array.null_count:
            return None
        if column in _TEXT_COLUMNS:
            index = pc.index_in(array, value_set=_KNOWN[column])
            if index.null_count:
                return None
            codes[column] = index.to_numpy().astype(np.int16)
            known = ks.EXPERIMENTS if column == "experiment" else ks.EVENTS
            text[column] = lambda i, c=codes[column], k=known: repr(k[c[i]])
            continue
        values[column] = array.to_numpy()
        if not np.isfinite(values[column]).all():
            return None
    return _Columns(values, {}, codes, text)


class _RowCountError(Exception):
    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


class _Reasons:
    """First failing check per row; builds strings only for failing rows."""

    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)
        self.bad = np.zeros(n, bool)

    def add(self, mask: np.ndarray, explain: Callable[[int], str]) -> None:
        if not mask.any():
            return
        new = mask & ~self.bad
        for i in np.flatnonzero(new):
            self.reason[i] = explain(int(i))
        self.bad |= new


def _validate(parsed_columns: _Columns, kind: str, n: int
              ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Parsed columns, reasons (None = good) and the row mask of good rows."""
    values, not_numbers, codes, text = parsed_columns
    numeric_columns = [c for c in COLUMNS[kind] if c not in _TEXT_COLUMNS]
    reasons = _Reasons(n)
    for column in numeric_columns:
        if column in not_numbers:
            mask, raw = not_numbers[column]
            reasons.add(mask, lambda i, c=column, t=raw: f"non-numeric value {t[i]!r} in column {c}")
        finite = np.isfinite(values[column])
        if column in record_spec.CHANNELS:
            finite &= np.isfinite(values[column].astype(np.float32))
        reasons.add(~finite, lambda i, c=column: f"missing or non-finite value in column {c}")
    crew, seat = values["crew"], values["seat"]
    reasons.add(~np.isin(crew, ks.CREWS), lambda i: f"unknown crew {crew[i]:g}")
    reasons.add(~np.isin(seat, ks.SEATS), lambda i: f"unknown seat {seat[i]:g}")
    signals = np.empty((n, record_spec.NUM_CHANNELS), np.float32)
    for j, channel in enumerate(record_spec.CHANNELS):
        signals[:, j] = values[channel]  # the float32 cast of astype(np.float32)
    parsed = {"crew": crew, "seat": seat, "time": values["time"], "signals": signals}
    parsed["experiment"] = codes["experiment"]
    allowed = np.isin(parsed["experiment"],
                      [ks.EXPERIMENTS.index(e) for e in ALLOWED_EXPERIMENTS[kind]])
    experiment = text["experiment"]
    reasons.add(~allowed, lambda i: f"unknown experiment {experiment(i)} in a {kind} file")
    if kind == "train":
        event = text["event"]
        parsed["labels"] = codes["event"]
        reasons.add(parsed["labels"] < 0, lambda i: f"unknown event {event(i)}")
    else:
        ids = values["id"]
        reasons.add(ids != np.floor(ids), lambda i: f"id {ids[i]:g} is not an integer")
        parsed["ids"] = ids
    return parsed, reasons.reason, ~reasons.bad


def _parse(chunk: LineChunk, file: InputFile, engine: str
           ) -> tuple[Optional[RowBatch], list[BadRow], int]:
    """parse_chunk's batch and bad rows, and the number of lines of the chunk.

    With the arrow engine a terminated chunk is first given to pyarrow whole: if it
    reads one clean row per line (pyarrow refuses a line of another field count, an
    empty line included), no line needs a shape check.  Otherwise lines of the wrong
    shape (and an unterminated last line) are set aside first, as pandas needs."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    data = chunk.data
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):
            data = data[:-1]
    unterminated = not chunk.data.endswith(b"\n")  # only a file's last line lacks a line end
    tried_arrow = engine == "arrow" and not unterminated
    if tried_arrow:
        lines = count_newlines(data)
        columns = _arrow_columns(data, file.kind, lines)
        if columns is not None:
            return _good_rows(columns, np.arange(lines), [],
                              _LineText(data, file, chunk.first_line, unterminated)) + (lines,)
    buf = np.frombuffer(data, np.uint8)
    starts, ends = _line_bounds(buf, unterminated)
    bad_row = _LineText(data, file, chunk.first_line, unterminated, (starts, ends))
    n_fields = len(COLUMNS[file.kind])
    fields = _field_counts(buf, starts, ends)
    shape_ok = (fields == n_fields) & (ends > starts)
    reasons = {int(i): record_spec.EMPTY_LINE_REASON if ends[i] == starts[i] else
               f"{fields[i]} fields, expected {n_fields}" for i in np.flatnonzero(~shape_ok)}
    if unterminated:
        last = len(starts) - 1
        reasons[last] = "; ".join(filter(None, (NO_FINAL_LINE_END, reasons.get(last))))
        shape_ok[last] = False
    bad = [bad_row(i, reason) for i, reason in reasons.items()]
    good_lines = np.flatnonzero(shape_ok)
    if len(good_lines) == 0:
        return None, bad, len(starts)
    if len(good_lines) < len(starts):
        lengths = np.diff(np.append(starts, len(buf)))
        data = buf[np.repeat(shape_ok, lengths)].tobytes()
    columns = None
    if engine == "arrow" and not (tried_arrow and len(good_lines) == len(starts)):
        columns = _arrow_columns(data, file.kind, len(good_lines))  # (not the same lines again)
    if columns is None:
        try:
            columns = _pandas_columns(data, file.kind, len(good_lines))
        except _RowCountError as err:
            raise RuntimeError(f"{file.path}: parsed {err.rows} rows from "
                               f"{len(good_lines)} lines near line {chunk.first_line}") from None
    return _good_rows(columns, good_lines, bad, bad_row) + (len(starts),)


class _LineText:
    """BadRow of line i of a chunk (0-based), its raw text found when first needed."""

    def __init__(self, data: bytes, file: InputFile, first_line: int, unterminated: bool,
                 bounds: Optional[tuple[np.ndarray, np.ndarray]] = None):
        self.data, self.file, self.first_line = data, file, first_line
        self._unterminated, self._bounds = unterminated, bounds

    def __call__(self, i: int, reason: str) -> BadRow:
        if self._bounds is None:
            self._bounds = _line_bounds(np.frombuffer(self.data, np.uint8), self._unterminated)
        starts, ends = self._bounds
        raw = self.data[starts[i]:ends[i]][:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")
        return BadRow(self.file.path, self.first_line + int(i), reason, raw)


def _good_rows(columns: _Columns, lines: np.ndarray, bad: list[BadRow], bad_row: _LineText
               ) -> tuple[Optional[RowBatch], list[BadRow]]:
    """The rows of the parsed `lines` (indices in the chunk) that pass the checks as a
    RowBatch; the others join `bad`."""
    file = bad_row.file
    parsed, reasons, good = _validate(columns, file.kind, len(lines))
    if not good.all():
        bad.extend(bad_row(lines[i], reasons[i]) for i in np.flatnonzero(~good))
        bad.sort(key=lambda row: row.line)
        if not good.any():
            return None, bad
        parsed = {k: v[good] for k, v in parsed.items()}
        lines = lines[good]
    batch = RowBatch(
        crew=parsed["crew"].astype(np.int16),
        experiment=parsed["experiment"].astype(np.uint8),
        seat=parsed["seat"].astype(np.int8),
        time=np.array(parsed["time"], np.float64),
        signals=parsed["signals"],
        order=order_key(file.index, bad_row.first_line + lines),
        labels=parsed["labels"].astype(np.uint8) if "labels" in parsed else None,
        ids=parsed["ids"].astype(np.int64) if "ids" in parsed else None)
    return batch, bad


def parse_chunk(chunk: LineChunk, file: InputFile, engine: str = "arrow"
                ) -> tuple[Optional[RowBatch], list[BadRow]]:
    """Parses the lines of a chunk into a RowBatch of good rows and a list of bad rows.
    `engine` "pandas" reads every chunk with pandas (the same result, slower)."""
    batch, bad, _ = _parse(chunk, file, engine)
    return batch, bad


class ParseChunks(beam.DoFn):
    """LineChunk -> RowBatch of good rows; bad rows and line counts as tagged outputs."""

    def __init__(self, files: Sequence[InputFile], engine: str = "arrow"):
        self._files = {f.index: f for f in files}
        self._stage = f"Read{files[0].kind.title()}"
        self._input_bytes = (None if any(f.compressed for f in files)
                             else sum(f.size - f.data_start for f in files))
        self._engine = engine

    def process(self, chunk: LineChunk):
        file = self._files[chunk.file_index]
        batch, bad, lines = _parse(chunk, file, self._engine)
        if not chunk.data.endswith(b"\n"):
            yield beam.pvalue.TaggedOutput(UNTERMINATED, (file.path, chunk.first_line + lines - 1))
        progress.add(self._stage, lines, "lines parsed", len(chunk.data), self._input_bytes)
        yield beam.pvalue.TaggedOutput(ROWS_IN, lines)
        for row in bad:
            yield beam.pvalue.TaggedOutput(BAD_ROWS, row)
        if batch is not None:
            yield batch
