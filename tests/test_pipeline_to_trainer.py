"""The stages joined: beam_preprocess output on generated data -> trainer train ->
predict -> score against test_labels.csv.  Each stage's own tests check it in
depth; this checks that what the Beam job writes is what the trainer reads, at a
1-s window and at the default 4-s one."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from beam_preprocess.__main__ import run as beam_run
from test_beam_e2e import output, raw  # noqa: F401  (session fixtures: one Beam run)
from trainer.records import spec as record_spec
from trainer.task import main as trainer_main
from trainer_fixtures import TINY_TRAIN_ARGS

DEFAULT_WINDOW = 2048  # 8 s, the Beam job's default


def _latest_run(job_dir: str) -> tuple[dict, dict]:
    """(config.json, metrics.json) of the job's latest run."""
    run_id = open(os.path.join(job_dir, "LATEST")).read().strip()
    run_dir = os.path.join(job_dir, "runs", run_id)
    with open(os.path.join(run_dir, "config.json")) as f, \
            open(os.path.join(run_dir, "metrics.json")) as g:
        return json.load(f), json.load(g)


def test_trainer_trains_predicts_and_scores_on_beam_output(output, raw, tmp_path, capsys):  # noqa: F811
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", output, "--job-dir", job_dir, *TINY_TRAIN_ARGS,
                         "--steps-per-epoch", "10", "--epochs", "1"]) == 0
    _, metrics = _latest_run(job_dir)
    assert metrics["complete"] and metrics["steps"] == 10
    with open(os.path.join(output, "manifest.json")) as f:
        manifest = json.load(f)
    valid_counts = manifest["splits"]["valid"]["windows_per_class"]
    per_class = metrics["final"]["per_class"]
    assert {c: per_class[c]["count"] for c in per_class} == valid_counts

    submission = str(tmp_path / "submission.csv")
    assert trainer_main(["predict", "--run", job_dir, "--data", output, "--out", submission,
                         "--prior", "train"]) == 0
    frame = pd.read_csv(submission)
    labels = pd.read_csv(raw / "test_labels.csv")
    assert sorted(frame["id"]) == sorted(labels["id"])
    np.testing.assert_allclose(frame[["A", "B", "C", "D"]].sum(axis=1), 1.0, atol=1e-5)

    capsys.readouterr()
    assert trainer_main(["score", "--submission", submission,
                         "--labels", str(raw / "test_labels.csv")]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["count"] == len(labels)
    assert np.isfinite(scored["log_loss"])


def test_default_window_with_derived_carry_and_validation_units(raw, tmp_path):  # noqa: F811
    """Both stages at their defaults: the 8-s window, carry and validation units that
    follow it, every class with validation windows; the trainer trains, validates and
    predicts on them (heart and breathing rhythms over the 8 s, EEG frames over its
    last second)."""
    data = str(tmp_path / "data")
    manifest = beam_run(["--train", str(raw / "train.csv"), "--test", str(raw / "test.csv"),
                         "--output", data, "--num-shards", "2"])
    assert manifest["window"] == DEFAULT_WINDOW
    options = manifest["options"]
    assert (options["carry_seconds"], options["valid_block_seconds"]) == (8.0, 32.0)
    splits = manifest["splits"]
    present = [c for c in record_spec.CLASSES
               if splits["train"]["rows_per_class"][c] + splits["valid"]["rows_per_class"][c]]
    assert present == list(record_spec.CLASSES)  # the generated data hold every class
    valid = splits["valid"]["windows_per_class"]
    assert all(valid[c] > 0 for c in present), valid

    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", data, "--job-dir", job_dir, *TINY_TRAIN_ARGS,
                         "--steps-per-epoch", "5", "--epochs", "1"]) == 0
    config, metrics = _latest_run(job_dir)
    assert config["window"] == DEFAULT_WINDOW and metrics["complete"]
    assert (config["frame_span"], config["slow_channels"]) == (256, "rhythms")
    per_class = metrics["final"]["per_class"]
    assert {c: per_class[c]["count"] for c in per_class} == valid

    submission = str(tmp_path / "submission.csv")
    assert trainer_main(["predict", "--run", job_dir, "--data", data, "--out", submission]) == 0
    ids = pd.read_csv(submission, usecols=["id"])["id"].to_numpy()
    expected = pd.read_csv(raw / "test_labels.csv", usecols=["id"])["id"].to_numpy()
    assert len(ids) == len(np.unique(ids)) == len(expected)
    np.testing.assert_array_equal(np.sort(ids), np.sort(expected))


def test_spectral_model_learns_the_states_better_than_raw(output, tmp_path):  # noqa: F811
    """On generated data the default (spectral) model's exported best epoch ends well
    below chance on the balanced validation windows, and below the raw model's."""
    schedule = ["--epochs", "8", "--steps-per-epoch", "25", "--global-batch-size", "128",
                "--patience", "0", "--seed", "1"]
    best = {}
    for front_end in ("spectral", "raw"):
        job_dir = str(tmp_path / front_end)
        assert trainer_main(["train", "--data", output, "--job-dir", job_dir,
                             "--front-end", front_end, *schedule]) == 0
        _, metrics = _latest_run(job_dir)
        best[front_end] = metrics["best"]["calibrated"]["balanced_log_loss"]
    assert best["spectral"] < 0.85 * np.log(4), best
    assert best["spectral"] < best["raw"] - 0.1, best
