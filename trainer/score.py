"""Scores a submission (id,A,B,C,D) against labels (id,event) with multi-class log loss."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
import tensorflow as tf

from trainer.errors import UserError
from trainer.metrics import classification_metrics
from trainer.record_spec import CLASSES


def _read_csv(path: str, columns: list[str], option: str) -> pd.DataFrame:
    if not tf.io.gfile.exists(path):
        raise UserError(f"{option} {path}: no such file")
    if "://" in path:  # pyarrow's fast reader wants a local file
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "file.csv")
            tf.io.gfile.copy(path, local)
            return _read_csv(local, columns, option)
    frame = pd.read_csv(path, engine="pyarrow")
    if list(frame.columns) != columns:
        raise UserError(f"{path}: columns {list(frame.columns)}, expected {columns}")
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        raise UserError(f"{path}: {int(duplicated.sum())} duplicate ids, e.g. "
                         f"{frame['id'][duplicated].head(3).tolist()}")
    return frame


def read_labels(path: str) -> pd.DataFrame:
    """A labels CSV (id,event), checked: unique ids, events among CLASSES."""
    truth = _read_csv(path, ["id", "event"], "--labels")
    unknown = sorted(set(truth["event"].unique()) - set(CLASSES))
    if unknown:
        raise UserError(f"{path}: events {unknown} are not among {list(CLASSES)}")
    return truth


def score(submission: str, labels: str) -> dict:
    """Metrics (log loss overall and per class, accuracy, confusion) of a submission.

    Every labelled id must be in the submission and no other id: a missing row
    would otherwise go unnoticed, and Kaggle rejects such files.
    """
    predicted = _read_csv(submission, ["id", *CLASSES], "--submission")
    truth = read_labels(labels)
    merged = truth.merge(predicted, on="id", how="outer", indicator=True)
    missing = merged["_merge"] == "left_only"
    extra = merged["_merge"] == "right_only"
    if missing.any() or extra.any():
        raise UserError(f"{submission}: {int(missing.sum())} labelled ids missing "
                         f"(e.g. {merged['id'][missing].head(3).tolist()}), "
                         f"{int(extra.sum())} ids not in {labels}")
    probs = merged[list(CLASSES)].to_numpy(dtype=np.float64)
    if np.isnan(probs).any() or (probs < 0).any():
        raise UserError(f"{submission}: probabilities must be non-negative numbers")
    label_index = merged["event"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    return classification_metrics(probs, label_index)
