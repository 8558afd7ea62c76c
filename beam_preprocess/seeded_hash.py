"""Deterministic, seeded 64-bit hashes of numpy arrays (SplitMix64 finaliser).

Used wherever the pipeline draws "at random": validation units, the robust
statistics' row sample and the balanced validation windows.  Hashes of the same
values and seed are the same on every worker and every run.
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of uint64 values (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _MUL1
        x = (x ^ (x >> np.uint64(27))) * _MUL2
    return x ^ (x >> np.uint64(31))


def hash_columns(seed: int, *columns: np.ndarray) -> np.ndarray:
    """One uint64 hash per row of the given integer or float columns."""
    h = mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    for column in columns:
        column = np.asarray(column)
        if column.dtype.kind == "f":
            bits = column.astype(np.float64).view(np.uint64)
        else:
            bits = column.astype(np.int64).view(np.uint64)
        h = mix64(h ^ bits)
    return np.asarray(h, dtype=np.uint64)
