"""Rows the pipeline refuses, with where they came from and why."""
from __future__ import annotations

import csv
import io
from typing import NamedTuple

import apache_beam as beam

from trainer import record_spec

QUARANTINE_HEADER = "file,line,reason,raw"


class BadRow(NamedTuple):
    """One refused CSV line: 1-based line number (the header is line 1)."""

    file: str
    line: int
    reason: str
    raw: str


def bad_row_csv_line(row: BadRow) -> str:
    """The row as one CSV line (raw text quoted, so commas and quotes survive)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(
        [row.file, row.line, row.reason, row.raw])
    return out.getvalue()


def quarantine_path(output: str) -> str:
    """The quarantine file of an output directory."""
    return f"{output.rstrip('/')}/{record_spec.QUARANTINE_PREFIX}.csv"


class WriteQuarantine(beam.PTransform):
    """Writes every bad row to OUTPUT/quarantine/bad_rows.csv (one file)."""

    def __init__(self, output: str):
        super().__init__()
        self._output = output

    def expand(self, bad_rows):
        return (
            bad_rows
            | "FormatCsv" >> beam.Map(bad_row_csv_line)
            | "WriteCsv" >> beam.io.WriteToText(
                quarantine_path(self._output), shard_name_template="",
                header=QUARANTINE_HEADER))
