"""Prediction: every test id once, probabilities, prior correction, scoring."""
import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from trainer.data import datasets as data
from trainer.prediction.predict import IdLedger
from trainer.prediction.prior import (DEFAULT_BALANCE, balance_prior, correct_prior,
                                      estimate_prior_bbse, estimate_prior_em)
from trainer.prediction.score import score
from trainer.prediction.window_rows import (DEFAULT_SMOOTH_SECONDS, DEFAULT_STRIDE,
                                            rows_from_windows, smoothing_windows, trailing_mean)
from trainer.runs import run_dir
from trainer.task import main


@pytest.fixture(scope="module")
def submission(trainer_trained_job, trainer_data_dir, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("predict") / "submission.csv")
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", out, "--stride", str(DEFAULT_STRIDE), "--prior", "none",
                 "--smooth", "0"]) == 0
    return out


def test_submission_has_every_test_id_once_with_probabilities(submission, trainer_data_dir):
    frame = pd.read_csv(submission)
    assert list(frame.columns) == ["id", "A", "B", "C", "D"]
    labels = pd.read_csv(os.path.join(trainer_data_dir, "test_labels.csv"))
    assert sorted(frame["id"]) == sorted(labels["id"])
    assert frame["id"].is_unique
    ids = data.read_manifest(trainer_data_dir)["splits"]["test"]["ids"]
    assert (len(frame), frame["id"].sum()) == (ids["count"], ids["sum"])
    probs = frame[list("ABCD")].to_numpy()
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_submission_scores_well_below_chance(submission, trainer_data_dir):
    metrics = score(submission, os.path.join(trainer_data_dir, "test_labels.csv"))
    assert metrics["count"] == 6000
    assert metrics["balanced_log_loss"] < 0.7 < math.log(4)


def test_prior_option_applies_bayes_rule(submission, trainer_trained_job, trainer_data_dir,
                                         tmp_path):
    """Explicit shares with --balance 0: Bayes' rule to exactly those shares."""
    shares = "A=0.58,B=0.03,C=0.34,D=0.05"
    out = str(tmp_path / "prior.csv")
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", out, "--stride", "16", "--prior", shares, "--balance", "0",
                 "--smooth", "0"]) == 0
    plain = pd.read_csv(submission).set_index("id").sort_index()
    corrected = pd.read_csv(out).set_index("id").sort_index()
    training_prior = run_dir.read_json(
        run_dir.find_run(trainer_trained_job).file("run.json"))["training_prior"]
    expected = correct_prior(plain.to_numpy(), np.array(training_prior),
                             np.array([0.58, 0.03, 0.34, 0.05]))
    np.testing.assert_allclose(corrected.to_numpy(), expected, rtol=1e-4, atol=1e-6)


def _predict_summary(capsys, *args: str) -> dict:
    import json

    capsys.readouterr()
    assert main(["predict", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_prior_em_is_estimated_from_the_test_predictions(
        submission, trainer_trained_job, trainer_data_dir, tmp_path, capsys):
    """--prior em: the EM estimate from the same probabilities the plain submission
    holds (every row counted once), balanced (the default --balance), then Bayes' rule."""
    out = str(tmp_path / "em.csv")
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                               "--out", out, "--stride", "16", "--prior", "em", "--smooth", "0")
    plain = pd.read_csv(submission).set_index("id").sort_index().to_numpy(np.float64)
    training_prior = np.array(run_dir.read_json(
        run_dir.find_run(trainer_trained_job).file("run.json"))["training_prior"])
    expected_prior, _ = estimate_prior_em(plain, training_prior)
    np.testing.assert_allclose(summary["target_prior"], expected_prior, atol=2e-4)
    assert summary["balance"] == DEFAULT_BALANCE
    np.testing.assert_allclose(summary["prior"], balance_prior(np.array(summary["target_prior"]),
                                                               DEFAULT_BALANCE))
    assert 0 < summary["em_iterations"] < 1000 and summary["temperature"] > 0
    corrected = pd.read_csv(out).set_index("id").sort_index().to_numpy()
    np.testing.assert_allclose(corrected, correct_prior(plain, training_prior,
                                                        np.array(summary["prior"])),
                               rtol=1e-3, atol=1e-5)


def test_default_prior_is_the_training_rows_shares_for_the_overall_log_loss(
        trainer_trained_job, trainer_data_dir, tmp_path, capsys):
    """No --prior, --balance, --stride or --smooth: Bayes' rule from the prior the model
    trained under to the training rows' class shares, nothing of the uniform mixed in
    (Kaggle's score is the overall log loss), over DEFAULT_SMOOTH_SECONDS of windows (none):
    the same file as those options given."""
    out, explicit = str(tmp_path / "default.csv"), str(tmp_path / "explicit.csv")
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                               "--out", out)
    assert summary["stride"] == DEFAULT_STRIDE and summary["balance"] == DEFAULT_BALANCE == 0.0
    assert summary["smooth_windows"] == smoothing_windows(DEFAULT_SMOOTH_SECONDS, DEFAULT_STRIDE,
                                                          256)
    run_info = run_dir.read_json(run_dir.find_run(trainer_trained_job).file("run.json"))
    rows = run_info["train_rows_per_class"]
    shares = np.array([rows.get(c, 0) for c in "ABCD"], dtype=np.float64)
    np.testing.assert_allclose(summary["prior"], shares / shares.sum(), atol=1e-12)
    _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                     "--out", explicit, "--stride", str(DEFAULT_STRIDE), "--prior", "train",
                     "--balance", "0", "--smooth", f"{DEFAULT_SMOOTH_SECONDS:g}")
    with open(out) as got, open(explicit) as expected:
        assert got.read() == expected.read()


def test_prior_train_takes_the_training_rows_shares(
        submission, trainer_trained_job, trainer_data_dir, tmp_path, capsys):
    """--prior train --balance 0: the training rows' class shares (the manifest's
    counts), as they are."""
    out = str(tmp_path / "train.csv")
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                               "--out", out, "--prior", "train", "--balance", "0")
    rows = data.read_manifest(trainer_data_dir)["splits"]["train"]["rows_per_class"]
    train_shares = np.array([rows.get(c, 0) for c in "ABCD"], dtype=np.float64)
    train_shares /= train_shares.sum()
    np.testing.assert_allclose(summary["prior"], train_shares, atol=1e-9)
    np.testing.assert_allclose(summary["target_prior"], train_shares, atol=1e-9)
    # Where the time went: every part measured, the model's share with its speed.
    seconds = summary["seconds"]
    assert set(seconds) == {"load", "read", "model", "rows", "prior", "write", "plot"}
    assert all(value >= 0 for value in seconds.values()) and seconds["model"] > 0
    assert summary["windows"] > 0
    model_seconds = (seconds["model"] - 0.005, seconds["model"] + 0.005)  # rounded to 0.01
    assert (summary["windows"] / model_seconds[1] - 1 <= summary["model_windows_per_second"]
            <= summary["windows"] / max(model_seconds[0], 1e-9) + 1)


def test_prior_bbse_is_estimated_with_the_validation_confusion(
        submission, trainer_trained_job, trainer_data_dir, tmp_path, capsys):
    """--prior bbse --balance 0: black-box shift estimation from the mean test
    prediction and the validation confusion that `train` stored in run.json."""
    out = str(tmp_path / "bbse.csv")
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                               "--out", out, "--stride", "16", "--prior", "bbse", "--balance", "0",
                               "--smooth", "0")
    run_info = run_dir.read_json(run_dir.find_run(trainer_trained_job).file("run.json"))
    confusion = np.array(run_info["valid_soft_confusion"])
    assert confusion.shape == (4, 4)
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0, atol=1e-6)
    plain = pd.read_csv(submission).to_numpy(np.float64)[:, 1:]
    np.testing.assert_allclose(summary["prior"], estimate_prior_bbse(plain.mean(axis=0), confusion),
                               atol=2e-4)
    # The fixture's test labels: BBSE lands near their shares.
    labels = pd.read_csv(os.path.join(trainer_data_dir, "test_labels.csv"))["event"]
    shares = labels.value_counts(normalize=True).reindex(list("ABCD")).to_numpy()
    np.testing.assert_allclose(summary["prior"], shares, atol=0.05)


def test_score_refuses_missing_ids(submission, trainer_data_dir, tmp_path):
    short = str(tmp_path / "short.csv")
    pd.read_csv(submission).iloc[1:].to_csv(short, index=False)
    with pytest.raises(ValueError, match="1 labelled ids missing"):
        score(short, os.path.join(trainer_data_dir, "test_labels.csv"))


def test_predict_refuses_data_without_a_test_split(trainer_trained_job, trainer_data_dir,
                                                   tmp_path, capsys):
    import json
    import shutil

    train_only = str(tmp_path / "train_only")
    shutil.copytree(trainer_data_dir, train_only)
    manifest_path = os.path.join(train_only, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    del manifest["splits"]["test"]
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    args = ["predict", "--run", trainer_trained_job, "--data", train_only,
            "--out", str(tmp_path / "s.csv")]
    assert main(args) == 2
    assert "no shards for split 'test'" in capsys.readouterr().err
    with pytest.raises(data.DataError, match="no shards for split 'test'"):
        main([*args, "--verbose"])


def test_rows_take_the_latest_window_ending_at_or_before_them():
    window_values = np.array([[0.0], [1.0], [2.0]])
    ends = np.array([63, 79, 95])
    rows = rows_from_windows(window_values, ends, num_rows=100, context_rows=10)
    assert rows.shape == (90, 1)
    values = rows[:, 0]
    assert (values[:63 - 10 + 1] == 0).all()   # rows 10..63: before/at the first end
    assert (values[64 - 10:79 - 10] == 0).all()  # rows 64..78: still the first window
    assert (values[79 - 10:95 - 10] == 1).all()  # rows 79..94: the second
    assert (values[95 - 10:] == 2).all()


def test_a_lookahead_takes_the_window_ending_that_many_rows_later():
    window_values = np.array([[0.0], [1.0], [2.0]])
    ends = np.array([63, 79, 95])
    values = rows_from_windows(window_values, ends, num_rows=100, context_rows=10,
                               lookahead=16)[:, 0]
    assert (values[:63 - 10] == 0).all()         # rows 10..62: row + 16 < 79
    assert (values[63 - 10:79 - 10] == 1).all()  # rows 63..78: row + 16 in 79..94
    assert (values[79 - 10:] == 2).all()         # rows 79..99: row + 16 >= 95, the last window


def test_trailing_mean_averages_each_window_with_those_before_it():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    smoothed = trailing_mean(probs, 8)
    for i in range(50):
        np.testing.assert_allclose(smoothed[i], probs[max(0, i - 7):i + 1].mean(axis=0))
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert trailing_mean(probs, 1) is probs
    assert smoothing_windows(2.0, stride=16, sample_rate_hz=256) == 32
    assert smoothing_windows(0.0, stride=16, sample_rate_hz=256) == 1


def test_smooth_averages_the_window_probabilities_causally(submission, trainer_trained_job,
                                                           trainer_data_dir, tmp_path, capsys):
    """--smooth: a row's probabilities are the trailing mean of the plain ones' windows,
    so the first rows of a segment keep theirs and later rows change."""
    out = str(tmp_path / "smooth.csv")
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                               "--out", out, "--stride", "16", "--prior", "none",
                               "--smooth", "1")
    assert summary["smooth_windows"] == 16
    plain = pd.read_csv(submission).set_index("id").sort_index()
    smooth = pd.read_csv(out).set_index("id").sort_index()
    assert smooth.index.equals(plain.index)
    np.testing.assert_allclose(smooth.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(smooth.to_numpy(), plain.to_numpy(), atol=1e-3)
    # Smoothing cannot push a probability outside the range of the windows it averages.
    assert smooth.to_numpy().max() <= plain.to_numpy().max() + 1e-6
    assert smooth.to_numpy().min() >= plain.to_numpy().min() - 1e-6


def test_lookahead_reassigns_the_same_windows(submission, trainer_trained_job,
                                              trainer_data_dir, tmp_path, capsys):
    out = str(tmp_path / "ahead.csv")
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", trainer_data_dir,
                               "--out", out, "--stride", "16", "--prior", "none",
                               "--lookahead", "0.25", "--smooth", "0")
    assert summary["lookahead_rows"] == 64
    causal = pd.read_csv(submission).set_index("id").sort_index()
    ahead = pd.read_csv(out).set_index("id").sort_index()
    assert ahead.index.equals(causal.index)
    assert not np.allclose(ahead.to_numpy(), causal.to_numpy())
    windows = {tuple(row) for row in causal.round(6).to_numpy()}
    assert {tuple(row) for row in ahead.round(6).to_numpy()} <= windows


@pytest.mark.parametrize("option, value", [("--lookahead", "-0.5"), ("--stride", "0"),
                                           ("--lookahead", "soon"), ("--smooth", "-1")])
def test_predict_refuses_a_bad_number(option, value, capsys):
    args = ["predict", "--run", "r", "--data", "d", "--out", "o.csv", option, value]
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    assert f"argument {option}: {value!r}" in capsys.readouterr().err


def test_id_ledger_catches_duplicates_and_gaps():
    ledger = IdLedger({"count": 5, "min": 0, "max": 4, "sum": 10})
    ledger.add(np.array([3, 0]))
    with pytest.raises(ValueError, match="written twice"):
        ledger.add(np.array([1, 3]))
    ledger = IdLedger({"count": 5, "min": 0, "max": 4, "sum": 10})
    ledger.add(np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="manifest lists"):
        ledger.check_complete()
    with pytest.raises(ValueError, match="outside the manifest's range"):
        ledger.add(np.array([7]))


def test_prior_train_works_on_a_test_only_data_directory(
        trainer_trained_job, trainer_data_dir, tmp_path, capsys):
    """A test split preprocessed on its own (beam_preprocess --test --stats) has no
    training counts: `--prior train` takes the shares of the rows the run trained on."""
    test_only = tmp_path / "test-only"
    shutil.copytree(trainer_data_dir, test_only)
    manifest = json.loads((test_only / "manifest.json").read_text())
    manifest["splits"] = {"test": manifest["splits"]["test"]}
    (test_only / "manifest.json").write_text(json.dumps(manifest))
    summary = _predict_summary(capsys, "--run", trainer_trained_job, "--data", str(test_only),
                               "--out", str(tmp_path / "sub.csv"), "--stride", "16",
                               "--prior", "train", "--balance", "0")
    rows = run_dir.read_json(run_dir.find_run(trainer_trained_job).file("run.json"))[
        "train_rows_per_class"]
    shares = np.array([rows[c] for c in "ABCD"], dtype=np.float64)
    np.testing.assert_allclose(summary["prior"], shares / shares.sum(), atol=1e-9)
