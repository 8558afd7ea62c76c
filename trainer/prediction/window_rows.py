"""Which strided window predicts each row of a segment (see trainer/prediction/predict.py).

Numpy only: the command line takes its defaults from here without loading
TensorFlow.
"""
from __future__ import annotations

import numpy as np

# Rows (1/16 s) between predicted windows.  A row takes the latest window ending at or
# before it, so a causal prediction is on average half a stride old: 64 rows scored
# ~4% worse on the stand-in's LOFT test sessions at scale 0.1 and ~1% at scale 1, 8 rows
# hardly better (README, "Predict every 16 rows"); each halving doubles the model's work.
DEFAULT_STRIDE = 16
# Seconds of windows each window's probabilities are averaged over (trailing_mean); off
# by default.  On the quality bench's real-length events 5 s lowered the overall test
# log loss in every cell measured (by up to 0.07); on the demo's squeezed events (20x
# shorter) even 1 s raised it (0.504 to 0.567, 5 s: 0.696), and the real files' D blocks
# last ~5 s.  What it gains depends on how long the states last, which is not known for
# the test sessions (README, Predict, "Evidence over seconds").
DEFAULT_SMOOTH_SECONDS = 0.0


def trailing_mean(values: np.ndarray, windows: int) -> np.ndarray:
    """Each window's values (e.g. class probabilities, [windows, classes]) averaged with
    those of the `windows - 1` windows before it, or of as many as precede it: evidence
    gathered over a span longer than one window, still causal."""
    if windows <= 1 or len(values) == 0:
        return values
    total = np.cumsum(values, axis=0, dtype=np.float64)
    total[windows:] = total[windows:] - total[:-windows]
    counts = np.minimum(np.arange(1, len(values) + 1), windows)
    return total / counts[:, None]


def smoothing_windows(seconds: float, stride: int, sample_rate_hz: int) -> int:
    """How many strided windows span `seconds` (at least 1: no smoothing)."""
    return max(1, round(seconds * sample_rate_hz / stride))


def row_windows(ends: np.ndarray, num_rows: int, context_rows: int,
                lookahead: int = 0) -> np.ndarray:
    """For each row in [context_rows, num_rows), the index of the latest window ending
    at or before the row + `lookahead`, or 0 (the first window) for rows before it."""
    rows = np.arange(context_rows, num_rows) + lookahead
    return np.maximum(np.searchsorted(ends, rows, side="right") - 1, 0)


def rows_from_windows(window_values: np.ndarray, ends: np.ndarray, num_rows: int,
                      context_rows: int, lookahead: int = 0) -> np.ndarray:
    """Values of rows [context_rows, num_rows), taken from their windows (row_windows)."""
    return window_values[row_windows(ends, num_rows, context_rows, lookahead)]
