"""bench/bench_quality.py: a trained run is reused, and scored again with --repredict."""
import json
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import bench_quality  # noqa: E402

from beam_preprocess.synth import physiology  # noqa: E402
from trainer.prediction.prior import DEFAULT_BALANCE  # noqa: E402
from trainer.prediction.score import score  # noqa: E402
from trainer.prediction.window_rows import DEFAULT_STRIDE  # noqa: E402
from trainer.task import main  # noqa: E402

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


def test_the_default_choice_passes_no_prior_so_predict_uses_its_own_defaults():
    assert bench_quality.predict_options("default") == []


def test_quick_sets_only_what_was_not_given():
    quick = bench_quality.parse_args(["--work", "w", "--quick"])
    assert (quick.scale, quick.seeds, quick.schemes) == (0.05, [0], ["time-blocks"])
    assert quick.test_scale == 0.1
    given = bench_quality.parse_args(["--work", "w", "--quick", "--seeds", "3,4"])
    assert given.seeds == [3, 4] and given.scale == 0.05
    full = bench_quality.parse_args(["--work", "w"])
    assert full.seeds == [0, 1, 2] and full.test_scale == full.scale == 0.1
    assert full.physiologies == list(physiology.SIGNAL) and full.events == "real"


@pytest.mark.parametrize("option, value", [("--physiologies", "calm"), ("--schemes", "random")])
def test_an_unknown_physiology_or_scheme_is_refused_in_one_line(option, value, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_quality.parse_args(["--work", "w", option, value])
    assert stop.value.code == 2
    assert f"{option}: unknown '{value}'" in capsys.readouterr().err.splitlines()[-1]


def cell(lstm: float, peer: float, constant: float) -> dict:
    """One physiology x validation of a bench result, with these test log losses."""
    summary = {"mean": lstm, "sd": 0.01, "values": [lstm]}
    result = {"lstm": {"default": {"log_loss": summary, "balanced_log_loss": summary,
                                   "valid_balanced": summary},
                       "none": {"log_loss": summary, "balanced_log_loss": summary,
                                "valid_balanced": summary}},
              "peer": {"log_loss": peer, "balanced_log_loss": peer, "trees": 40},
              "baseline": {"valid_balanced": 1.0},
              "constant": {"log_loss": constant, "balanced_log_loss": 2.0}}
    result["ratios"] = bench_quality.ratios(result, "default")
    return result


def bench_result(cells: dict) -> dict:
    results = {"schemes": ["time-blocks", "holdout-crews"], "priors": ["default", "none"],
               "physiologies": {name: {"schemes": dict(zip(["time-blocks", "holdout-crews"], pair))}
                                for name, pair in cells.items()}}
    results["verdict"] = bench_quality.verdict(results)
    return results


def test_the_verdict_is_the_worst_cell_and_it_can_say_no():
    """The bench can fail: one physiology where the LSTM loses is enough, and so is one
    peer that does not beat its constant prior by the limit."""
    winning = bench_result({"a": (cell(0.2, 0.4, 0.8), cell(0.3, 0.4, 0.8)),
                            "b": (cell(0.1, 0.4, 0.8), cell(0.2, 0.5, 0.8))})
    assert winning["verdict"]["lstm_wins_everywhere"] and winning["verdict"]["every_peer_is_a_yardstick"]
    assert winning["verdict"]["worst_lstm_over_peer"] == {"ratio": 0.75, "physiology": "a",
                                                         "validation": "holdout-crews"}
    losing = bench_result({"a": (cell(0.2, 0.4, 0.8), cell(0.3, 0.4, 0.8)),
                           "b": (cell(0.5, 0.4, 0.8), cell(0.2, 0.76, 0.8))})
    assert not losing["verdict"]["lstm_wins_everywhere"]
    assert losing["verdict"]["worst_lstm_over_peer"] == {"ratio": 1.25, "physiology": "b",
                                                        "validation": "time-blocks"}
    assert not losing["verdict"]["every_peer_is_a_yardstick"]
    assert losing["verdict"]["worst_peer_over_constant"]["ratio"] == 0.95
    last = bench_quality.table(losing, "default").splitlines()[-1]
    assert "**1.25x** (b, time-blocks)" in last and "0.95x (b, holdout-crews)" in last


def test_on_the_null_physiology_the_peer_does_not_count_as_a_yardstick(tmp_path):
    """Where no state shows, the peer cannot beat the constant prior by the bench's
    limit: the check that every real physiology passes is one that can fail."""
    import peer_gbm

    raw = bench_quality.generate(str(tmp_path), physiology.NULL, 0.03, 0.03, "real", 0)
    data_dir = bench_quality.preprocess(str(tmp_path), raw, "time-blocks", None, 500, 0)
    result = peer_gbm.run(data_dir, labels=os.path.join(raw, "test_labels.csv"))
    ratio = result["test"]["log_loss"] / result["prior"]["test"]["log_loss"]
    assert ratio > bench_quality.PEER_OVER_CONSTANT_LIMIT, result


def test_data_of_another_window_is_not_reused(tmp_path):
    """A work directory's data written at one window must not stand in for another:
    the bench would judge the wrong default."""
    data = tmp_path / "data" / "time-blocks"
    data.mkdir(parents=True)
    (data / "manifest.json").write_text(json.dumps({"window": 1024}))
    assert bench_quality.preprocess(str(tmp_path), "raw", "time-blocks", 1024, None, 0) == str(data)
    with pytest.raises(SystemExit, match="holds 1024-row windows, not the 2048 asked for"):
        bench_quality.preprocess(str(tmp_path), "raw", "time-blocks", 2048, None, 0)
    with pytest.raises(SystemExit, match="not the 2048 asked for"):  # the Beam job's default
        bench_quality.preprocess(str(tmp_path), "raw", "time-blocks", None, None, 0)
