"""The LightGBM peer (bench/peer_gbm.py): every test id once, probabilities, learns the fixture."""
import copy
import json
import math
import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import peer_gbm  # noqa: E402
from trainer_fixtures import FixtureSpec, write_fixture_data  # noqa: E402

# Label blocks of 6-12 s: the peer's 1 s and 4 s rolling windows lie mostly inside one block.
FIXTURE = FixtureSpec(rows_per_session=12000, label_block_rows=(1500, 3000))


@pytest.fixture(scope="module")
def peer_run(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("peer_gbm_data"))
    manifest = write_fixture_data(data_dir, FIXTURE)
    out = str(tmp_path_factory.mktemp("peer_gbm") / "gbm.csv")
    result = peer_gbm.run(data_dir, labels=os.path.join(data_dir, "test_labels.csv"), out=out,
                          row_step=8, trees=100)
    return data_dir, manifest, out, result


def test_every_test_id_predicted_once_with_probabilities(peer_run):
    data_dir, manifest, out, result = peer_run
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "A", "B", "C", "D"]
    assert frame["id"].is_unique
    labels = pd.read_csv(os.path.join(data_dir, "test_labels.csv"))
    assert sorted(frame["id"]) == sorted(labels["id"])
    ids = manifest["splits"]["test"]["ids"]
    assert (len(frame), frame["id"].sum()) == (ids["count"], ids["sum"])
    assert result["rows"]["test"] == ids["count"]
    probs = frame[list("ABCD")].to_numpy()
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_learns_the_fixture_classes(peer_run):
    _, manifest, _, result = peer_run
    per_session = math.ceil(FIXTURE.rows_per_session / 8)
    assert result["rows"]["train"] == per_session * FIXTURE.train_sessions
    assert result["rows"]["valid"] == manifest["splits"]["valid"]["rows"]
    assert 1 <= result["trees"] <= 100
    assert result["feature_groups"] == {g: len(n) for g, n in peer_gbm.FEATURE_GROUPS.items()}
    assert result["valid"]["balanced_log_loss"] < 0.7 < math.log(4)
    assert result["test"]["balanced_log_loss"] < 0.7
    assert result["test"]["balanced_log_loss"] < result["prior"]["test"]["balanced_log_loss"]


def test_rolling_features_are_trailing_means_and_sds():
    rng = np.random.default_rng(0)
    signals = rng.normal(5.0, 2.0, (1500, 23)).astype(np.float32)
    features = pd.DataFrame(peer_gbm.rolling_features(signals), columns=peer_gbm.ROLLING_NAMES)
    x = pd.Series(signals[:, 3].astype(np.float64))
    name = peer_gbm.SERIES[3]
    for span, rows in peer_gbm.ROLLING_ROWS.items():
        rolling = x.rolling(rows, min_periods=1)
        np.testing.assert_allclose(features[f"{name}_mean_{span}"], rolling.mean(), rtol=1e-5)
        np.testing.assert_allclose(features[f"{name}_sd_{span}"], rolling.std(ddof=0),
                                   rtol=1e-4, atol=1e-5)
    diff = x.diff().fillna(0.0).rolling(256, min_periods=1).std(ddof=0)
    np.testing.assert_allclose(features[f"d_{name}_sd_1s"], diff, rtol=1e-4, atol=1e-5)


def test_lookahead_takes_the_prediction_of_a_later_row():
    rng = np.random.default_rng(0)
    signals = rng.normal(0.0, 1.0, (600, 23)).astype(np.float32)
    reference = {None: np.zeros(len(peer_gbm.REFERENCED), dtype=np.float32)}
    features = peer_gbm.with_reference(peer_gbm.session_features(signals), (1, 0), reference)
    labels = (signals[:, 0] > 0).astype(int) + 2 * (signals[:, 1] > 0)
    booster = peer_gbm.fit(features, labels, features, labels, seed=0, trees=5,
                           early_stopping=5, threads=1, num_leaves=7, learning_rate=0.3,
                           min_data_in_leaf=20)
    session = peer_gbm.SessionRows(key=(1, "LOFT", 0), signals=signals, ids=np.arange(600))
    _, causal = peer_gbm.predict_test(booster, [session], reference)
    ids, ahead = peer_gbm.predict_test(booster, [session], reference, lookahead_rows=128)
    np.testing.assert_array_equal(ids, np.arange(600))
    np.testing.assert_array_equal(ahead[:472], causal[128:])
    np.testing.assert_array_equal(ahead[472:], np.repeat(causal[-1:], 128, axis=0))
    assert not np.array_equal(ahead, causal)


def test_user_errors_are_one_line(tmp_path, capsys, peer_run):
    data_dir, manifest = peer_run[0], copy.deepcopy(peer_run[1])
    no_test = tmp_path / "no_test"
    shutil.copytree(data_dir, no_test)
    del manifest["splits"]["test"]
    (no_test / "manifest.json").write_text(json.dumps(manifest))
    assert peer_gbm.main(["--data", str(tmp_path / "nowhere")]) == 2
    assert peer_gbm.main(["--data", str(no_test)]) == 2
    assert peer_gbm.main(["--data", data_dir, "--labels", str(tmp_path / "no.csv")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "nowhere" in errors[0] and "'test'" in errors[1] and "no.csv" in errors[2]


def _band_power(signals: np.ndarray, region: str, band: str, kind: str = "logpow",
                span: str = "1s") -> np.ndarray:
    features = peer_gbm.band_features(signals)
    return features[:, peer_gbm.BAND_NAMES.index(f"{region}_{band}_{kind}_{span}")]


def _eeg_sine(hz: float, rows: int = 2048, amplitude: float = 1.0) -> np.ndarray:
    """Every EEG channel a sinusoid of `hz` plus weak noise; ecg, r and gsr noise."""
    rng = np.random.default_rng(1)
    signals = rng.normal(0.0, 0.05, (rows, 23))
    t = np.arange(rows) / peer_gbm.SECOND
    signals[:, peer_gbm.EEG_COLUMNS] += amplitude * np.sin(2 * np.pi * hz * t)[:, None]
    return signals.astype(np.float32)


@pytest.mark.parametrize("band,hz,outside_hz", [("theta", 6.0, 25.0), ("alpha", 10.0, 40.0),
                                                ("beta", 20.0, 3.0), ("gamma", 45.0, 10.0)])
def test_band_power_responds_to_a_sinusoid_in_its_band_only(band, hz, outside_hz):
    """A sinusoid in the band raises that band's power and share; one two octaves away
    (as strong) does not."""
    settled = slice(1024, None)  # past the filters' start and the 1-s window
    inside = _band_power(_eeg_sine(hz), "all", band)[settled]
    outside = _band_power(_eeg_sine(outside_hz), "all", band)[settled]
    assert inside.min() > outside.max() + np.log(30.0)  # over 30x the power
    share = _band_power(_eeg_sine(hz), "occipital", band, kind="share")[settled]
    assert share.min() > np.log(0.8)


def test_features_are_causal():
    """A row's features do not change when later rows change (the pilot reference aside)."""
    rng = np.random.default_rng(2)
    signals = rng.normal(0.0, 1.0, (6000, 23)).astype(np.float32)
    changed = signals.copy()
    changed[4000:] = rng.normal(3.0, 5.0, (2000, 23))
    before = peer_gbm.session_features(signals)[:4000]
    after = peer_gbm.session_features(changed)[:4000]
    np.testing.assert_allclose(before, after, rtol=1e-4, atol=1e-4)


def test_dominant_period_finds_heart_and_breathing_rates():
    """An ecg-like pulse train at 72/min and a breathing wave at 15/min, held step-like."""
    rows = 30 * peer_gbm.SECOND
    t = np.arange(rows) / peer_gbm.SECOND
    signals = np.zeros((rows, 23), dtype=np.float32)
    beat = (t * 72.0 / 60.0) % 1.0
    signals[:, peer_gbm.spec.CHANNELS.index("ecg")] = np.exp(-0.5 * ((beat - 0.3) / 0.02) ** 2)
    signals[:, peer_gbm.spec.CHANNELS.index("r")] = np.sin(2 * np.pi * t * 15.0 / 60.0)
    features = pd.DataFrame(peer_gbm.autonomic_features(signals),
                            columns=peer_gbm.AUTONOMIC_NAMES)
    assert features["heart_per_min"][:6 * peer_gbm.SECOND - 1].isna().all()
    np.testing.assert_allclose(features["heart_per_min"][-4000:], 72.0, rtol=0.03)
    np.testing.assert_allclose(features["breath_per_min"][-4000:], 15.0, rtol=0.03)
    # The autocorrelation is not rescaled for its shorter overlap at longer lags (which
    # would favour multiples of the period): a 4-s period in a 12-s frame peaks at 2/3.
    assert (features["breath_periodicity"][-4000:] > 0.6).all()


def test_pilot_reference_uses_features_only():
    """Each pilot's median feature, the same whatever the labels; unknown pilots get the
    median over all pilots' rows."""
    rng = np.random.default_rng(3)
    features = rng.normal(0.0, 1.0, (400, len(peer_gbm.SESSION_NAMES))).astype(np.float32)
    pilots = np.repeat([[1, 0], [1, 1]], 200, axis=0)
    features[200:] += 5.0
    reference = peer_gbm.pilot_reference(features, pilots)
    assert set(reference) == {None, (1, 0), (1, 1)}
    np.testing.assert_allclose(reference[1, 1] - reference[1, 0], 5.0, atol=0.5)
    rows_a = peer_gbm.LabelledRows(features, np.zeros(400, np.uint8), pilots, None)
    rows_b = peer_gbm.LabelledRows(features, rng.integers(0, 4, 400).astype(np.uint8), pilots,
                                   None)
    np.testing.assert_array_equal(peer_gbm.referenced_features(rows_a, reference),
                                  peer_gbm.referenced_features(rows_b, reference))
    referenced = peer_gbm.with_reference(features[200:], (1, 1), reference)
    assert referenced.shape == (200, len(peer_gbm.FEATURE_NAMES))
    np.testing.assert_allclose(np.median(referenced[:, len(peer_gbm.SESSION_NAMES):], axis=0),
                               0.0, atol=1e-5)
    newcomer = peer_gbm.with_reference(features[:5], (9, 0), reference)
    np.testing.assert_allclose(newcomer[:, len(peer_gbm.SESSION_NAMES):],
                               features[:5, peer_gbm.REFERENCED] - reference[None], atol=1e-5)
