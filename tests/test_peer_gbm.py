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
    assert result["valid"]["balanced_log_loss"] < 0.7 < math.log(4)
    assert result["test"]["balanced_log_loss"] < 0.7
    assert result["test"]["balanced_log_loss"] < result["prior"]["test"]["balanced_log_loss"]


def test_rolling_features_are_trailing_means_and_sds():
    rng = np.random.default_rng(0)
    signals = rng.normal(5.0, 2.0, (1500, 23)).astype(np.float32)
    features = pd.DataFrame(peer_gbm.rolling_features(signals), columns=peer_gbm.FEATURE_NAMES)
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
    features = peer_gbm.rolling_features(signals)
    labels = (signals[:, 0] > 0).astype(int) + 2 * (signals[:, 1] > 0)
    booster = peer_gbm.fit(features, labels, features, labels, seed=0, trees=5,
                           early_stopping=5, threads=1, num_leaves=7, learning_rate=0.3)
    session = peer_gbm.SessionRows(key=(1, "LOFT", 0), signals=signals, ids=np.arange(600))
    _, causal = peer_gbm.predict_test(booster, [session])
    ids, ahead = peer_gbm.predict_test(booster, [session], lookahead_rows=128)
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
