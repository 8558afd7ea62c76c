"""Rows the pipeline refuses, with where they came from and why."""
from __future__ import annotations

import csv
import io
from typing import Iterable, NamedTuple, Optional

import apache_beam as beam

from beam_preprocess.claimed_sinks import ClaimedTextSink
from beam_preprocess.input_stream import open_input
from trainer.records import spec as record_spec
from trainer.shared.output_claim import ClaimTicket

QUARANTINE_HEADER = ",".join(record_spec.QUARANTINE_COLUMNS)
RAW_TEXT_LIMIT = 2000  # characters of a refused line kept in `raw`
_READ_BYTES = 1 << 22


class BadRow(NamedTuple):
    """One refused CSV line: 1-based line number (the header is line 1).

    `raw` is the line as read; None where the line was refused after parsing
    (a repeated time) until RecoverRawLines reads it back from the file.
    """

    file: str
    line: int
    reason: str
    raw: Optional[str]


def bad_row_csv_line(row: BadRow) -> str:
    """The row as one CSV line (raw text quoted, so commas and quotes survive)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(
        [row.file, row.line, row.reason, row.raw])
    return out.getvalue()


def _line_text(line: bytes) -> str:
    return line.rstrip(b"\r")[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")


def read_lines(path: str, wanted: Iterable[int]) -> dict[int, str]:
    """The text of the wanted 1-based lines of a file, in one pass that stops
    after the last of them (blocks without a wanted line are only counted)."""
    targets = sorted(set(wanted), reverse=True)  # next wanted line last
    found: dict[int, str] = {}
    line, tail = 1, b""  # tail: the unfinished line numbered `line`
    with open_input(path) as stream:
        while targets:
            block = stream.read(_READ_BYTES)
            if not block:
                if tail and targets[-1] == line:
                    found[targets.pop()] = _line_text(tail)
                break
            data = tail + block
            newlines = data.count(b"\n")
            if targets[-1] < line + newlines:
                lines = data.split(b"\n")
                while targets and targets[-1] < line + newlines:
                    number = targets.pop()
                    found[number] = _line_text(lines[number - line])
            tail = data[data.rfind(b"\n") + 1:]
            line += newlines
    return found


def _with_raw_lines(file_rows: tuple[str, Iterable[BadRow]]) -> list[BadRow]:
    path, rows = file_rows
    rows = list(rows)
    text = read_lines(path, (r.line for r in rows))
    return [r._replace(raw=text.get(r.line, "")) for r in rows]


class RecoverRawLines(beam.PTransform):
    """Bad rows whose `raw` is None -> the same rows with the line as read from
    their file (one pass per file, only over files that have such rows)."""

    def expand(self, bad_rows):
        return (
            bad_rows
            | "KeyByFile" >> beam.Map(lambda row: (row.file, row))
            | "GroupByFile" >> beam.GroupByKey()
            | "ReadLines" >> beam.FlatMap(_with_raw_lines))


def quarantine_path(output: str) -> str:
    """The quarantine file of an output directory."""
    return f"{output.rstrip('/')}/{record_spec.QUARANTINE_PREFIX}.csv"


class WriteQuarantine(beam.PTransform):
    """Writes every bad row to OUTPUT/quarantine/bad_rows.csv (one file), moved into
    place only while `ticket`'s claim is this job's."""

    def __init__(self, output: str, ticket: ClaimTicket):
        super().__init__()
        self._output, self._ticket = output, ticket

    def expand(self, bad_rows):
        return (
            bad_rows
            | "FormatCsv" >> beam.Map(bad_row_csv_line)
            | "WriteCsv" >> beam.io.Write(ClaimedTextSink(
                self._ticket, quarantine_path(self._output), shard_name_template="",
                header=QUARANTINE_HEADER)))
