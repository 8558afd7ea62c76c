"""bench/bench_quality.py: a trained run is reused, and scored again with --repredict."""
import json
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import bench_quality  # noqa: E402

from trainer.prior import DEFAULT_BALANCE  # noqa: E402
from trainer.score import score  # noqa: E402
from trainer.task import main  # noqa: E402
from trainer.window_rows import DEFAULT_STRIDE  # noqa: E402

STALE = {"train_seconds": 1.0, "train_peak_rss_mb": 1.0, "best_epoch": 3, "temperature": 1.0,
         "valid_balanced_log_loss": 0.5,
         "test": {"none": {"log_loss": 9.9, "balanced_log_loss": 9.9, "stride": 64,
                           "predict_seconds": 1.0, "predict_peak_rss_mb": 1.0}}}


@pytest.fixture
def bench_work(trainer_trained_job, tmp_path) -> str:
    """A bench working directory whose seed-0 run was trained and scored before."""
    job = tmp_path / "lstm" / "time-blocks" / "seed0"
    shutil.copytree(trainer_trained_job, job)
    (tmp_path / "lstm" / "time-blocks" / "seed0.json").write_text(json.dumps(STALE))
    return str(tmp_path)


def test_a_scored_run_is_reused(bench_work, trainer_data_dir):
    labels = os.path.join(trainer_data_dir, "test_labels.csv")
    result = bench_quality.lstm(bench_work, trainer_data_dir, labels, "time-blocks", 0, [],
                                ["none"])
    assert result == STALE


def test_repredict_scores_the_trained_run_again_without_training(bench_work, trainer_data_dir,
                                                                 tmp_path):
    labels = os.path.join(trainer_data_dir, "test_labels.csv")
    result = bench_quality.lstm(bench_work, trainer_data_dir, labels, "time-blocks", 0, [],
                                ["none"], repredict=True)
    direct = str(tmp_path / "direct.csv")
    assert main(["predict", "--run", os.path.join(bench_work, "lstm", "time-blocks", "seed0"),
                 "--data", trainer_data_dir, "--out", direct, "--prior", "none"]) == 0
    expected = score(direct, labels)
    scored = result["test"]["none"]
    assert scored["stride"] == DEFAULT_STRIDE
    assert scored["log_loss"] == pytest.approx(expected["log_loss"], rel=1e-6)
    assert scored["balanced_log_loss"] == pytest.approx(expected["balanced_log_loss"], rel=1e-6)
    # What training measured is kept; the file holds the new scores.
    assert {k: result[k] for k in ("best_epoch", "valid_balanced_log_loss")} == {
        "best_epoch": 3, "valid_balanced_log_loss": 0.5}
    with open(os.path.join(bench_work, "lstm", "time-blocks", "seed0.json")) as f:
        assert json.load(f) == result


def test_a_prior_choice_may_name_its_balance():
    assert bench_quality.predict_options("bbse") == ["--prior", "bbse", "--balance",
                                                     f"{DEFAULT_BALANCE:g}"]
    assert bench_quality.predict_options("train@0") == ["--prior", "train", "--balance", "0"]
    assert bench_quality.predict_options("none") == ["--prior", "none"]
