"""Scores a submission (id,A,B,C,D) against labels (id,event) with multi-class log loss.

Every probability must be a finite number >= 0, and every row must have a positive
sum: anything else is refused naming the file and its line (the header is line 1).
Rows are then treated as Kaggle does: probabilities clipped to [1e-15, 1 - 1e-15],
each row divided by its sum.  Rows whose sum was not 1 (within SUM_TOLERANCE) are
counted (`rescaled_rows`), so that a submission that is not normalised shows.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, Optional

import numpy as np
import pandas as pd
import tensorflow as tf

from trainer.records.spec import CLASSES
from trainer.shared.errors import UserError
from trainer.shared.metrics import EPSILON, classification_metrics

# A row whose probabilities sum to 1 within this is not counted as rescaled: predict
# writes float32 digits (each off by up to ~6e-8), other tools may round more.
SUM_TOLERANCE = 1e-5


def _read_csv(path: str, columns: list[str], option: str,
              check: Optional[Callable[[pd.DataFrame, Callable[[int], str]], None]] = None,
              shown: Optional[str] = None) -> pd.DataFrame:
    """The CSV at `path`, its columns and ids checked, then `check(frame, line_of)`
    (line_of(row) -> "file:line"); errors name `shown` (the path given), not a local
    copy."""
    shown = shown or path
    if not tf.io.gfile.exists(path):
        raise UserError(f"{option} {path}: no such file")
    if "://" in path:  # pyarrow's fast reader wants a local file
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "file.csv")
            tf.io.gfile.copy(path, local)
            return _read_csv(local, columns, option, check, shown)
    try:
        frame = pd.read_csv(path, engine="pyarrow")
    except (ValueError, pd.errors.ParserError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(f"{option} {shown}: not a readable CSV ({str(err).splitlines()[0]})") \
            from None
    if list(frame.columns) != columns:
        raise UserError(f"{shown}: columns {list(frame.columns)}, expected {columns}")
    ids = pd.to_numeric(frame["id"], errors="coerce").to_numpy(np.float64)
    whole = np.isfinite(ids) & (ids == np.floor(ids))
    if not whole.all():
        row = int(np.flatnonzero(~whole)[0])
        raise UserError(f"{_where(path, shown, row)}: id {frame['id'].iloc[row]!r} is not a "
                        "whole number")
    frame["id"] = ids.astype(np.int64)
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        raise UserError(f"{shown}: {int(duplicated.sum())} duplicate ids, e.g. "
                         f"{frame['id'][duplicated].head(3).tolist()}")
    if check is not None:
        check(frame, lambda row: _where(path, shown, row))
    return frame


def _where(local: str, shown: str, row: int) -> str:
    """`shown:line` of data row `row` (0-based) of the CSV at `local`: the reader skips
    blank lines, so they are counted here; the header is line 1."""
    with open(local, "rb") as f:
        seen = -2  # the header becomes data row -1
        for number, line in enumerate(f, start=1):
            if line.strip(b"\r\n"):
                seen += 1
                if seen == row:
                    return f"{shown}:{number}"
    return f"{shown} (data row {row + 1})"


def _check_probabilities(frame: pd.DataFrame, line_of: Callable[[int], str]) -> None:
    """Makes the probability columns float64; the first row that holds text, an empty
    cell, NaN, an infinity or a negative number, or only zeros, is refused naming its
    line."""
    problems = np.full(len(frame), None, dtype=object)

    def mark(mask: np.ndarray, explain) -> None:
        for row in np.flatnonzero(mask & np.equal(problems, None)):
            problems[row] = explain(int(row))

    values = np.empty((len(frame), len(CLASSES)))
    for j, column in enumerate(CLASSES):
        series = frame[column]
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
        values[:, j] = numbers
        text = series.astype(object).to_numpy()
        given = series.notna().to_numpy() & np.array([not (isinstance(v, str) and not v.strip())
                                                      for v in text])
        mark(np.isnan(numbers) & given,
             lambda row, c=column, t=text: f"column {c} holds {t[row]!r}, not a number")
        mark(np.isnan(numbers), lambda row, c=column: f"column {c} is empty or NaN: not a number")
        mark(np.isinf(numbers), lambda row, c=column: f"column {c} is infinite")
        mark(numbers < 0, lambda row, c=column, v=numbers: f"column {c} is negative ({v[row]:g})")
    mark(~(values > 0).any(axis=1), lambda row: "the probabilities are all zero")
    bad = np.flatnonzero(~np.equal(problems, None))
    if bad.size:
        row = int(bad[0])
        more = f" (and {bad.size - 1} more rows)" if bad.size > 1 else ""
        raise UserError(f"{line_of(row)}: {problems[row]}{more}; every "
                        "probability must be a finite number >= 0, with some above 0 in "
                        "each row")
    for j, column in enumerate(CLASSES):
        frame[column] = values[:, j]


def read_labels(path: str) -> pd.DataFrame:
    """A labels CSV (id,event), checked: unique ids, events among CLASSES."""
    truth = _read_csv(path, ["id", "event"], "--labels")
    unknown = sorted(set(truth["event"].unique()) - set(CLASSES))
    if unknown:
        raise UserError(f"{path}: events {unknown} are not among {list(CLASSES)}")
    return truth


def kaggle_rows(probs: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows clipped to [EPSILON, 1 - EPSILON] and divided by their sums, as Kaggle's
    log loss does; and how many rows did not sum to 1 (within SUM_TOLERANCE)."""
    rescaled = int((np.abs(probs.sum(axis=1) - 1.0) > SUM_TOLERANCE).sum())
    clipped = np.clip(probs, EPSILON, 1 - EPSILON)
    return clipped / clipped.sum(axis=1, keepdims=True), rescaled


def score(submission: str, labels: str) -> dict:
    """Metrics (log loss overall and per class, accuracy, confusion) of a submission,
    and `rescaled_rows` (module docstring).

    Every labelled id must be in the submission and no other id: a missing row
    would otherwise go unnoticed, and Kaggle rejects such files.
    """
    predicted = _read_csv(submission, ["id", *CLASSES], "--submission", _check_probabilities)
    truth = read_labels(labels)
    merged = truth.merge(predicted, on="id", how="outer", indicator=True)
    missing = merged["_merge"] == "left_only"
    extra = merged["_merge"] == "right_only"
    if missing.any() or extra.any():
        raise UserError(f"{submission}: {int(missing.sum())} labelled ids missing "
                         f"(e.g. {merged['id'][missing].head(3).tolist()}), "
                         f"{int(extra.sum())} ids not in {labels}")
    probs, rescaled = kaggle_rows(merged[list(CLASSES)].to_numpy(dtype=np.float64))
    label_index = merged["event"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    return {**classification_metrics(probs, label_index), "rescaled_rows": rescaled}
