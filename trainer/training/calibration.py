"""Temperature scaling (Guo et al. 2017): one scalar T > 0 divides the logits.

A network trained to low loss is often over-confident: its logits are too large,
so a wrong prediction costs a lot of log loss.  Dividing every logit by one T,
fitted on held-out windows, fixes that without changing any argmax (accuracy
stays the same) and with one parameter, so it cannot over-fit the validation set.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from trainer.records.spec import NUM_CLASSES
from trainer.shared.metrics import row_log_losses, softmax

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
LOG_TOLERANCE = 1e-6  # of log T: T is found to within ~1e-6 relative
_INVERSE_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Logits scaled by 1 / temperature (softmax them for the calibrated probabilities)."""
    return logits / temperature


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *,
                    class_weights: Optional[np.ndarray] = None) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] minimising the log loss of
    softmax(logits / T) against integer `labels`.

    `class_weights` [4] weights each row by its true class, e.g. 1 / class count for
    the balanced log loss (each class present counts equally); None is the plain
    mean.  Each row's loss is convex in 1 / T (log-sum-exp of lines minus a line),
    so the loss is unimodal in log T and a golden-section search on log T finds the
    minimum without gradients or scipy, deterministically.  (The metric's clipping
    at 1e-15 caps a wrong row's loss, which matters only for T far below any fit.)
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or logits.shape[1] != NUM_CLASSES or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be [n, {NUM_CLASSES}] with n = {labels.shape[0]} labels, "
                         f"got {logits.shape}")
    row_weights = None
    if class_weights is not None:
        class_weights = np.asarray(class_weights, dtype=np.float64)
        if class_weights.shape != (NUM_CLASSES,) or (class_weights < 0).any():
            raise ValueError(f"class_weights must be [{NUM_CLASSES}] non-negative, "
                             f"got {class_weights}")
        row_weights = class_weights[labels]
        if row_weights.sum() <= 0:
            raise ValueError("class_weights give every labelled row weight 0")

    def loss(log_temperature: float) -> float:
        probs = softmax(apply_temperature(logits, math.exp(log_temperature)))
        return float(np.average(row_log_losses(probs, labels), weights=row_weights))

    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    inner_low = high - _INVERSE_GOLDEN * (high - low)
    inner_high = low + _INVERSE_GOLDEN * (high - low)
    loss_low, loss_high = loss(inner_low), loss(inner_high)
    while high - low > LOG_TOLERANCE:
        if loss_low <= loss_high:  # the minimum is in [low, inner_high]
            high, inner_high, loss_high = inner_high, inner_low, loss_low
            inner_low = high - _INVERSE_GOLDEN * (high - low)
            loss_low = loss(inner_low)
        else:  # the minimum is in [inner_low, high]
            low, inner_low, loss_low = inner_low, inner_high, loss_high
            inner_high = low + _INVERSE_GOLDEN * (high - low)
            loss_high = loss(inner_high)
    return math.exp((low + high) / 2.0)
