"""Test rows that beam_preprocess quarantined, read back for predict.

They are in no record, but Kaggle rejects a submission short of an id: each one whose
id can be read from its raw line (the quarantine file keeps file, line, reason and the
raw line) is written too, with the prediction of the nearest predicted row in time of
its session (crew, seat, experiment), or the prior used where its session has no
predicted row or its time cannot be read.  An id already written (a repeated id that
beam_preprocess quarantined, keeping the first) is not written again.  Rows whose id
cannot be read are counted and named (file:line) in a warning.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import posixpath
from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.data import datasets as data
from trainer.records import spec

log = logging.getLogger(__name__)

TEST_FIELDS = len(spec.TEST_KEY_COLUMNS) + spec.NUM_CHANNELS


def quarantine_path(data_dir: str, manifest: dict) -> Optional[str]:
    """The data directory's quarantine file if the manifest counts quarantined rows."""
    if not manifest.get("rows", {}).get("quarantined"):
        return None
    name = manifest.get("quarantine_file") or spec.QUARANTINE_PREFIX + ".csv"
    return posixpath.join(data_dir, name)


@dataclasses.dataclass
class QuarantinedRows:
    """The quarantined test rows whose id could be read (first occurrence of each id,
    in file and line order), and counts of the others."""
    ids: np.ndarray                                  # int64
    sessions: list[Optional[tuple[int, int, bytes]]]  # (crew, seat, experiment)
    time: np.ndarray                                 # float64, NaN where unreadable
    where: list[str]                                 # file:line
    repeated: int = 0                                # repeats of an id among them
    without_id: list[str] = dataclasses.field(default_factory=list)  # file:line (reason)
    blank_lines: int = 0


def read_quarantined_test_rows(path: Optional[str], manifest: dict,
                               data_dir: str) -> QuarantinedRows:
    """The test rows of the quarantine file at `path` (None: nothing quarantined):
    rows of the manifest's input files of kind "test", their id, session and time
    read from the raw line."""
    result = QuarantinedRows(np.zeros(0, np.int64), [], np.zeros(0), [])
    if path is None:
        return result
    counted = manifest["rows"]["quarantined"]
    if not tf.io.gfile.exists(path):
        raise data.DataError(f"{path} is missing, but the manifest counts {counted} "
                             "quarantined rows: the data directory is damaged; copy it again "
                             "or re-run beam_preprocess")
    files = [f for f in manifest.get("input_fingerprints", ()) if isinstance(f, dict)]
    test_files = {f.get("path"): i for i, f in enumerate(files) if f.get("kind") == "test"}
    if not test_files:
        raise data.DataError(f"{posixpath.join(data_dir, spec.MANIFEST_NAME)}: its "
                             "input_fingerprints name no input of kind 'test', so the test "
                             f"rows among its {counted} quarantined rows cannot be told: re-run "
                             "beam_preprocess with this release")
    found, count = [], 0
    with tf.io.gfile.GFile(path, "r") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != list(spec.QUARANTINE_COLUMNS):
            raise data.DataError(f"{path}: header {header}, expected "
                                 f"{','.join(spec.QUARANTINE_COLUMNS)}: not a quarantine file of "
                                 "beam_preprocess; re-run it")
        for record in reader:
            count += 1
            if len(record) != len(spec.QUARANTINE_COLUMNS) or not record[1].isdigit():
                raise data.DataError(f"{path}:{reader.line_num}: not a quarantined row "
                                     "(file,line,reason,raw): the data directory is damaged; "
                                     "re-run beam_preprocess")
            file, line, reason, raw = record
            if file not in test_files:
                continue
            where = f"{file}:{line}"
            if reason == spec.EMPTY_LINE_REASON:
                result.blank_lines += 1
                continue
            parsed = _parse_raw_test_line(raw)
            if isinstance(parsed, str):
                result.without_id.append(f"{where} ({parsed}; quarantined as: {reason})")
                continue
            found.append(((test_files[file], int(line)), where, *parsed))
    if count != counted:
        raise data.DataError(f"{path} lists {count} rows, but the manifest counts {counted} "
                             "quarantined rows: the data directory is damaged; re-run "
                             "beam_preprocess")
    found.sort(key=lambda row: row[0])
    seen: set[int] = set()
    ids, times = [], []
    for _, where, id_, session, time in found:
        if id_ in seen:
            result.repeated += 1
            continue
        seen.add(id_)
        ids.append(id_)
        times.append(time)
        result.where.append(where)
        result.sessions.append(session)
    result.ids = np.array(ids, dtype=np.int64)
    result.time = np.array(times, dtype=np.float64)
    return result


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _whole(text: str) -> Optional[int]:
    value = _number(text)
    return int(value) if value is not None and value.is_integer() else None


def _parse_raw_test_line(raw: str):
    """(id, session or None, time or NaN) of a test CSV line as beam_preprocess kept it,
    or why its id cannot be read.

    A line with the test CSV's number of fields gives its id from the first field,
    its session and time where they read.  A line with another number (cut short, a
    field dropped or added) is trusted only where its key fields read as a session and
    a time: otherwise its fields may be out of place (a dropped id would make the crew
    read as the id)."""
    fields = raw.split(",")
    if not raw.strip():
        return "its line was not kept"
    id_ = _whole(fields[0])
    if id_ is None or id_ < 0:
        return f"id {fields[0][:40]!r} is not a whole number >= 0"
    keys = dict(zip(spec.TEST_KEY_COLUMNS, fields))
    crew, seat = _whole(keys.get("crew", "")), _whole(keys.get("seat", ""))
    experiment = keys.get("experiment", "").strip()
    time = _number(keys.get("time", ""))
    session = ((crew, seat, experiment.encode())
               if crew is not None and seat in (0, 1) and experiment else None)
    if len(fields) != TEST_FIELDS and (session is None or time is None
                                       or _number(experiment) is not None):
        return f"{len(fields)} fields, not {TEST_FIELDS}, and the fields that would be " \
               "crew, experiment, time and seat do not read as such"
    return id_, session, math.nan if time is None else time


@dataclasses.dataclass
class FillPlan:
    """Which quarantined ids are written, and where their prediction comes from."""
    ids: np.ndarray            # the ids to write
    where: list[str]           # their file:line
    with_prior: np.ndarray     # bool: no nearest row (the prior is written)
    already_written: int       # quarantined ids not written again
    _by_segment: dict          # segment number -> (positions in ids, row offsets)

    def of_segment(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        empty = np.zeros(0, dtype=np.int64)
        return self._by_segment.get(number, (empty, empty))


class NearestRows:
    """For each quarantined row, the predicted row of its session nearest in time
    (the earlier on a tie), found segment by segment as the records stream by."""

    def __init__(self, rows: QuarantinedRows):
        self.rows = rows
        self._by_session: dict[tuple, np.ndarray] = {}
        for i, session in enumerate(rows.sessions):
            if session is not None and not math.isnan(rows.time[i]):
                self._by_session.setdefault(session, []).append(i)
        self._by_session = {k: np.array(v) for k, v in self._by_session.items()}
        n = rows.ids.size
        self.distance = np.full(n, np.inf)
        self.segment = np.full(n, -1, dtype=np.int64)
        self.row = np.zeros(n, dtype=np.int64)

    def offer(self, number: int, session: tuple, time: np.ndarray) -> None:
        """The own rows (their times) of segment `number` of `session`."""
        wanted = self._by_session.get(session)
        if wanted is None or time.size == 0:
            return
        order = None if (np.diff(time) >= 0).all() else np.argsort(time, kind="stable")
        times = time if order is None else time[order]
        t = self.rows.time[wanted]
        after = np.clip(np.searchsorted(times, t, side="left"), 0, times.size - 1)
        before = np.clip(after - 1, 0, times.size - 1)
        take_after = np.abs(times[after] - t) < np.abs(t - times[before])
        pick = np.where(take_after, after, before)
        distance = np.abs(times[pick] - t)
        better = distance < self.distance[wanted]
        chosen = wanted[better]
        self.distance[chosen] = distance[better]
        self.segment[chosen] = number
        self.row[chosen] = (pick if order is None else order[pick])[better]

    def plan(self, write: np.ndarray) -> FillPlan:
        """The plan for the rows where `write` is True (ids not written already)."""
        kept = np.flatnonzero(write)
        by_segment: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        segments = self.segment[kept]
        for number in np.unique(segments[segments >= 0]):
            positions = np.flatnonzero(segments == number)
            by_segment[int(number)] = (positions, self.row[kept[positions]])
        return FillPlan(ids=self.rows.ids[kept], where=[self.rows.where[i] for i in kept],
                        with_prior=segments < 0,
                        already_written=int((~write).sum()) + self.rows.repeated,
                        _by_segment=by_segment)


def _listed(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit
                                       else "")


def report_quarantined(rows: QuarantinedRows, fill: FillPlan, training_prior: bool) -> dict:
    """Warns of the quarantined test rows written and those that cannot be; their counts."""
    if fill.ids.size:
        log.warning(
            "%d test ids that beam_preprocess quarantined are written with the prediction "
            "of their session's nearest row in time (%d of them with the %s prior: their "
            "session has no predicted row, or their time cannot be read): %s",
            fill.ids.size, int(fill.with_prior.sum()),
            "training" if training_prior else "corrected",
            _listed([f"id {i} ({where})" for i, where in zip(fill.ids.tolist(), fill.where)]))
    if rows.without_id:
        log.warning(
            "%d quarantined test rows have no readable id, so the submission lacks them "
            "and Kaggle will reject it: correct these lines and re-run beam_preprocess: %s",
            len(rows.without_id), _listed(rows.without_id))
    if fill.already_written:
        log.info("%d quarantined test rows repeat an id already written (written once)",
                 fill.already_written)
    if rows.blank_lines:
        log.info("%d blank lines of the test files were quarantined (no id)", rows.blank_lines)
    return {"filled": int(fill.ids.size), "filled_with_prior": int(fill.with_prior.sum()),
            "already_written": fill.already_written, "without_id": len(rows.without_id),
            "blank_lines": rows.blank_lines}
