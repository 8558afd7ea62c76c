"""bench/bench_stages.py and bench/bench_demo.py: what they measure and write, with provenance."""
import json
import os
import shlex
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import bench_demo  # noqa: E402
import bench_stages  # noqa: E402
from test_beam_e2e import output, raw  # noqa: E402,F401  (session fixtures: one Beam run)
from trainer_fixtures import TINY_TRAIN_ARGS  # noqa: E402

QUICK_TRAIN = shlex.join([*TINY_TRAIN_ARGS, "--epochs", "1", "--steps-per-epoch", "5"])


def test_stages_are_timed_scored_and_stamped(output, raw, tmp_path, capsys):  # noqa: F811
    result_path = tmp_path / "stages.json"
    result = bench_stages.main(["--data", output, "--labels", str(raw / "test_labels.csv"),
                                "--work", str(tmp_path / "work"), "--trainer-args", QUICK_TRAIN,
                                "--json", str(result_path)])
    assert json.loads(result_path.read_text()) == result
    for stage in ("train", "predict", "score"):
        assert result[stage]["seconds"] > 0 and result[stage]["peak_rss_mb"] > 0
    assert result["train"]["exported_epoch"] == 1
    assert result["predict"]["rows"] == result["rows"]["test"]
    assert 0 < result["score"]["log_loss"] < 10
    assert set(result["score"]["per_class_log_loss"]) <= {"A", "B", "C", "D"}
    stamp = result["provenance"]
    assert stamp["command"].startswith("python bench/bench_stages.py --data ")
    assert {"date", "machine", "commit"} <= set(stamp)
    assert "peer" not in result


def test_a_failing_stage_names_itself(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text("{\"splits\": {}}")
    (tmp_path / "labels.csv").write_text("id,event\n")
    with pytest.raises(SystemExit, match="bench_stages: train failed"):
        bench_stages.main(["--data", str(tmp_path / "data"), "--labels",
                           str(tmp_path / "labels.csv"), "--work", str(tmp_path / "work")])


def test_demo_scores_read_what_the_demo_wrote(tmp_path):
    (tmp_path / "score.json").write_text(json.dumps({"log_loss": 0.51234,
                                                     "balanced_log_loss": 1.7}))
    (tmp_path / "gbm.json").write_text(json.dumps({
        "test": {"log_loss": 0.45, "balanced_log_loss": 1.5},
        "prior": {"test": {"log_loss": 0.85, "balanced_log_loss": 2.1}}}))
    assert bench_demo.scores(str(tmp_path)) == {
        "lstm": {"log_loss": 0.5123, "balanced_log_loss": 1.7},
        "peer": {"log_loss": 0.45, "balanced_log_loss": 1.5},
        "constant": {"log_loss": 0.85, "balanced_log_loss": 2.1}}
