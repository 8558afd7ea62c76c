"""The stages joined: beam_preprocess output on generated data -> trainer train ->
predict -> score against test_labels.csv.  Each stage's own tests check it in
depth; this checks that what the Beam job writes is what the trainer reads."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from test_beam_e2e import output, raw  # noqa: F401  (session fixtures: one Beam run)
from trainer.task import main as trainer_main
from trainer_fixtures import TINY_TRAIN_ARGS


def test_trainer_trains_predicts_and_scores_on_beam_output(output, raw, tmp_path, capsys):  # noqa: F811
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", output, "--job-dir", job_dir, *TINY_TRAIN_ARGS,
                         "--steps-per-epoch", "10", "--epochs", "1"]) == 0
    run_id = open(os.path.join(job_dir, "LATEST")).read().strip()
    with open(os.path.join(job_dir, "runs", run_id, "metrics.json")) as f:
        metrics = json.load(f)
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
