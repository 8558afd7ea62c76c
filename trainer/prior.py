"""Class-prior correction of predicted probabilities.

A model trained on balanced windows predicts as if every class were equally
likely; the test data is not (A ~58%, B ~3%).  Bayes' rule moves it to a target
prior: p'(c) is proportional to p(c) * target(c) / training_prior(c).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from trainer.record_spec import CLASSES, NUM_CLASSES

PRIOR_HELP = ("none (keep the training prior), train (the training rows' class shares), "
              "uniform, or explicit shares like A=0.58,B=0.03,C=0.34,D=0.05")


def parse_prior(text: Optional[str], manifest: dict) -> Optional[np.ndarray]:
    """The target prior named by `text` (see PRIOR_HELP); None for no correction."""
    if text is None or text == "none":
        return None
    if text == "uniform":
        return np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    if text == "train":
        rows = manifest["splits"].get("train", {}).get("rows_per_class")
        if not rows:
            raise ValueError("--prior train: the manifest has no splits.train.rows_per_class "
                             "(a test-only output?): give the shares, e.g. A=0.58,B=0.03,C=0.34,D=0.05")
        shares = np.array([float(rows.get(c, 0)) for c in CLASSES])
    else:
        shares = _explicit_shares(text)
    if shares.sum() <= 0:
        raise ValueError(f"--prior {text!r}: shares sum to {shares.sum()}")
    return shares / shares.sum()


def _explicit_shares(text: str) -> np.ndarray:
    values = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in CLASSES:
            raise ValueError(f"--prior {text!r}: {part!r} is not CLASS=SHARE ({PRIOR_HELP})")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"--prior {text!r}: share {value!r} of {name} is not a number") from None
        if values[name] < 0:
            raise ValueError(f"--prior {text!r}: share of {name} is negative")
    missing = [c for c in CLASSES if c not in values]
    if missing:
        raise ValueError(f"--prior {text!r}: no share for {missing}")
    return np.array([values[c] for c in CLASSES])


def correct_prior(probs: np.ndarray, training_prior: np.ndarray,
                  target_prior: np.ndarray) -> np.ndarray:
    """Rows of `probs` moved from training_prior to target_prior (rows sum to 1).

    A class the model never trained on (training prior 0) keeps probability 0.
    """
    training_prior = np.asarray(training_prior, dtype=np.float64)
    ratio = np.divide(target_prior, training_prior, out=np.zeros(NUM_CLASSES),
                      where=training_prior > 0)
    corrected = probs * ratio
    return corrected / corrected.sum(axis=1, keepdims=True)
