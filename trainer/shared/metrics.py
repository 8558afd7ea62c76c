"""Classification metrics from probabilities: overall, per class, confusion matrix.

Log loss follows the Kaggle metric: rows renormalised to sum to 1, probabilities
clipped to [1e-15, 1 - 1e-15].  `balanced_log_loss` is the mean of the per-class
log losses over the classes present, i.e. what a uniform class prior would score.
"""
from __future__ import annotations

import numpy as np

from trainer.records.spec import CLASSES, NUM_CLASSES

EPSILON = 1e-15


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def row_log_losses(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probs = probs / probs.sum(axis=1, keepdims=True)
    picked = np.clip(probs[np.arange(labels.shape[0]), labels], EPSILON, 1 - EPSILON)
    return -np.log(picked)


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Metrics of probabilities [n, 4] against integer labels [n]."""
    labels = np.asarray(labels, dtype=np.int64)
    losses = row_log_losses(np.asarray(probs, dtype=np.float64), labels)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for c, name in enumerate(CLASSES):
        of_class = labels == c
        count = int(of_class.sum())
        per_class[name] = {
            "count": count,
            "log_loss": float(losses[of_class].mean()) if count else None,
            "accuracy": float((predicted[of_class] == c).mean()) if count else None,
        }
    present = [v for v in per_class.values() if v["count"]]
    return {
        "count": int(labels.shape[0]),
        "log_loss": float(losses.mean()),
        "accuracy": float((predicted == labels).mean()),
        "balanced_log_loss": float(np.mean([v["log_loss"] for v in present])),
        "balanced_accuracy": float(np.mean([v["accuracy"] for v in present])),
        "per_class": per_class,
        "confusion": confusion.tolist(),  # rows: true class, columns: predicted
    }
