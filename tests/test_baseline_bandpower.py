"""The band-power baseline's features (bench/baseline_bandpower.py): with and without levels."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import baseline_bandpower  # noqa: E402


def _windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 256, 23)).astype(np.float32)


def test_levels_are_the_slow_channels_window_means():
    windows = _windows()
    shifted = windows.copy()
    shifted[:, :, 20:] += 3.0  # another session's DC level of ecg, r and gsr
    with_levels = baseline_bandpower.features(windows)
    without = baseline_bandpower.features(windows, levels=False)
    assert with_levels.shape == (8, 20 * 4 + 3 * 3)
    assert without.shape == (8, 20 * 4 + 3 * 2)
    # Without levels a constant offset of the slow channels changes nothing; with them it
    # moves exactly the three means.
    np.testing.assert_allclose(baseline_bandpower.features(shifted, levels=False), without,
                               atol=1e-4)
    moved = ~np.isclose(baseline_bandpower.features(shifted), with_levels, atol=1e-4).all(0)
    assert np.flatnonzero(moved).tolist() == [80, 81, 82]
