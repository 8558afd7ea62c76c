"""A small real keras-tuner search on the sine fixture: trial configs (batch size, front
end, window, frame and hop, augmentation), the objective, resume, settings checks,
hyperband continuation, the report, and the exported config retrained."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from trainer.config import TrainConfig
from tuning.hypermodel import OBJECTIVE_NAME, TRIAL_RECORD
from trainer.shared.figures import plt
from tuning.report import (TrialSummary, best_config, load_trials, objective_figure,
                           per_class_figure, trials_markdown)
from tuning.settings import PROJECT
from tuning.space import SearchSpace
from tuning.task import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The fixture's window is 64 rows.  Two front ends, two windows, two frames, two hops
# (and, by default, three augmentation strengths); patience 1 so that trials stop early;
# seed 1, whose first three random trials draw both batch sizes, front ends and windows.
TINY_SEARCH_ARGS = ["--max-layers", "2", "--units", "8,16", "--batch-sizes", "16,32",
                    "--learning-rate-range", "0.003,0.02", "--dropout-range", "0,0.2",
                    "--front-ends", "spectral,filterbank", "--windows", "32,64",
                    "--frames", "16,32", "--hop-fractions", "0.5,1", "--filters", "4",
                    "--epochs", "3", "--steps-per-epoch", "15", "--patience", "1",
                    "--valid-batch-size", "256", "--seed", "1"]
BASE = TrainConfig()


def _records(tuner_dir: str) -> dict[str, dict]:
    """trial id -> (keras-tuner's trial, our record)."""
    out = {}
    for path in tf.io.gfile.glob(os.path.join(tuner_dir, PROJECT, "trial_*", "trial.json")):
        trial = kt.engine.trial.Trial.load(path)
        record_path = os.path.join(os.path.dirname(path), TRIAL_RECORD)
        with open(record_path) as f:
            out[trial.trial_id] = {"trial": trial, "record": json.load(f)}
    return out


@pytest.fixture(scope="module")
def random_search(trainer_data_dir, tmp_path_factory) -> str:
    tuner_dir = str(tmp_path_factory.mktemp("tuner") / "random")
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", tuner_dir,
                 "--algorithm", "random", "--max-trials", "3", *TINY_SEARCH_ARGS]) == 0
    return tuner_dir


def test_each_trial_trains_with_its_own_hyperparameters(random_search):
    records = _records(random_search)
    assert len(records) == 3
    for r in records.values():
        hp, config = r["trial"].hyperparameters.values, r["record"]["config"]
        assert r["trial"].status == "COMPLETED"
        assert config["global_batch_size"] == hp["batch_size"]
        assert len(config["lstm_units"]) == hp["lstm_layers"]
        assert config["lstm_units"] == [hp[f"units_{i}"] for i in range(hp["lstm_layers"])]
        assert config["learning_rate"] == pytest.approx(hp["learning_rate"])
        assert config["front_end"] == hp["front_end"] in ("spectral", "filterbank")
        assert config["window"] == hp["window"] in (32, 64)
        assert config["frame"] == hp["frame"] in (16, 32)
        assert config["hop"] == round(hp["frame"] * hp["hop_fraction"]) <= config["frame"]
        assert config["frame"] <= config["window"]
        assert config["augment_gain"] == pytest.approx(BASE.augment_gain * hp["augment"])
        assert config["augment_shift"] == round(BASE.augment_shift * hp["augment"])
        assert config["temperature_scaling"] is hp["temperature_scaling"] is True  # the base's
        assert r["record"]["complete"] and r["record"]["attempts"] == 1
        assert r["trial"].score == pytest.approx(
            min(e[OBJECTIVE_NAME] for e in r["record"]["epochs"]))
    assert len({r["record"]["config"]["global_batch_size"] for r in records.values()}) == 2
    assert {r["record"]["config"]["front_end"] for r in records.values()} == {
        "spectral", "filterbank"}
    assert {r["record"]["config"]["window"] for r in records.values()} == {32, 64}


def test_the_objective_is_what_the_trainer_would_export_and_trials_stop_by_its_rule(
        random_search):
    """After each epoch: the best epoch so far by uncalibrated balanced log loss (the
    trainer's best_epoch), at its own temperature; a trial stops after `patience` (1)
    epochs without a better one, as a training run does."""
    for r in _records(random_search).values():
        epochs = r["record"]["epochs"]
        for i, e in enumerate(epochs):
            best = min(epochs[:i + 1], key=lambda x: x["val_balanced_log_loss"])
            assert e[OBJECTIVE_NAME] == best["val_calibrated_balanced_log_loss"]
            assert e["val_calibrated_balanced_log_loss"] <= e["val_balanced_log_loss"] + 1e-6
        best = min(epochs, key=lambda x: x["val_balanced_log_loss"])
        assert r["record"]["stopped_early"] == (epochs[-1]["epoch"] - best["epoch"] >= 1)


def test_rerun_resumes_and_keeps_finished_trials(random_search, trainer_data_dir):
    before = {k: (v["trial"].score, v["record"]["seconds"]) for k, v in _records(random_search).items()}
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", random_search,
                 "--algorithm", "random", "--max-trials", "4", *TINY_SEARCH_ARGS]) == 0
    after = _records(random_search)
    assert len(after) == 4
    for trial_id, (score, seconds) in before.items():
        assert after[trial_id]["trial"].score == score
        assert after[trial_id]["record"]["seconds"] == seconds  # not trained again
        assert after[trial_id]["record"]["attempts"] == 1


def test_other_settings_in_the_same_directory_are_refused_naming_both_values(
        random_search, trainer_data_dir, capsys):
    capsys.readouterr()
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", random_search,
                 "--algorithm", "random", "--max-trials", "4",
                 *TINY_SEARCH_ARGS[:3], "8,32", *TINY_SEARCH_ARGS[4:], "--epochs", "4"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"python -m tuning search: error: {random_search} holds a search "
                           "with other settings (--epochs 3 there, 4 now; --units 8,16 there, "
                           "8,32 now): "), line
    assert "--overwrite" in line


def test_report_lists_every_trial_and_exports_the_chosen_config(
        random_search, trainer_data_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["report", "--tuner-dir", random_search]) == 0
    printed = capsys.readouterr().out
    trials = load_trials(random_search)
    assert len(trials) == len(_records(random_search))
    for t in trials:
        assert f"| {t.trial_id} | COMPLETED |" in printed
    assert [t.score for t in trials] == sorted(t.score for t in trials)
    report_dir = os.path.join(random_search, "report")
    for name in ("trials.csv", "trials.md", "per_class_best.png", "objective_vs_batch_size.png",
                 "objective_vs_learning_rate.png", "objective_vs_front_end.png",
                 "objective_vs_temperature_scaling.png", "objective_vs_window.png",
                 "best_config.json"):
        assert os.path.getsize(os.path.join(report_dir, name)) > 0, name
    assert tf.io.gfile.glob(os.path.join(report_dir, "hparams", trials[0].trial_id, "events.*"))

    with open(os.path.join(report_dir, "best_config.json")) as f:
        best = json.load(f)
    record = _records(random_search)[trials[0].trial_id]["record"]
    # What the search chose, with its budget (the trial's epochs and patience) set back
    # to the trainer's defaults: the trainer then trains to its own stopping rule.
    defaults = TrainConfig().to_dict()
    assert record["config"]["epochs"] != defaults["epochs"]
    assert best == {**record["config"], "epochs": defaults["epochs"],
                    "patience": defaults["patience"]}

    from trainer.task import main as trainer_main
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", trainer_data_dir, "--job-dir", job_dir,
                         "--config", os.path.join(report_dir, "best_config.json"),
                         "--epochs", "2"]) == 0
    latest = open(os.path.join(job_dir, "LATEST")).read().strip()
    with open(os.path.join(job_dir, "runs", latest, "config.json")) as f:
        assert json.load(f) == {**best, "epochs": 2}


def _legend_outside(fig, ax) -> bool:
    fig.canvas.draw()
    return not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())


def test_report_plots_are_readable_and_the_table_has_no_empty_column(random_search):
    """Integer hyperparameters get integer ticks at the values tried, the learning rate
    a log axis with plain labels, every point its trial id, legends outside the data;
    columns empty for every trial (`continues` outside Hyperband) are left out."""
    trials = load_trials(random_search)
    scored = {t.trial_id for t in trials if t.score is not None}
    for name in ("lstm_layers", "units_0", "batch_size", "window", "frame", "augment"):
        fig = objective_figure(trials, name)
        ax = fig.axes[0]
        tried = sorted({t.hyperparameters[name] for t in trials if name in t.hyperparameters})
        assert list(ax.get_xticks()) == tried, name
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(int(v)) for v in tried], name
        assert {t.get_text() for t in ax.texts} == scored, name
        assert _legend_outside(fig, ax), name
        plt.close(fig)

    fig = objective_figure(trials, "learning_rate")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    fig.canvas.draw()
    low, high = ax.get_xlim()
    shown = [(tick, label.get_text()) for tick, label in zip(ax.get_xticks(), ax.get_xticklabels())
             if low <= tick <= high]
    assert len(shown) >= 2
    for tick, text in shown:  # plain decimals such as 0.003, not 3e-03 or $10^{-3}$
        assert text == np.format_float_positional(float(f"{tick:.3g}"), trim="-"), text
    assert {t.get_text() for t in ax.texts} == scored and _legend_outside(fig, ax)
    plt.close(fig)

    fig = per_class_figure(trials, top=3)
    assert all(float(t).is_integer() for ax in fig.axes for t in ax.get_xticks())
    assert _legend_outside(fig, fig.axes[-1]) and fig.axes[0].get_ylabel()
    plt.close(fig)

    header, _, *rows = [[c.strip() for c in line.strip("|").split("|")]
                        for line in trials_markdown(trials).splitlines()]
    assert "continues" not in header and "trial" in header and "objective" in header
    for i, column in enumerate(header):
        assert any(row[i] for row in rows), column


@pytest.mark.parametrize("args, message", [
    (["--windows", "32,128"], "--windows 128: longer than the data's window (64 rows"),
    (["--frames", "16,48", "--windows", "32,64"], "--frames 16,48 and --windows 32,64"),
    (["--frames", "16", "--hop-fractions", "0.5,2"], "--hop-fractions 0.5,2: each must be in"),
])
def test_a_space_no_trial_could_train_is_refused_in_one_line(args, message, trainer_data_dir,
                                                            tmp_path, capsys):
    tuner_dir = str(tmp_path / "refused")
    capsys.readouterr()
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", tuner_dir, *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tuning search: error: " + message), lines
    assert not os.path.exists(tuner_dir)


def test_frames_longer_than_the_frame_span_are_refused(trainer_data_dir, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"frame": 16, "frame_span": 32}')
    capsys.readouterr()
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", str(tmp_path / "t"),
                 "--config", str(config), "--frames", "16,48"]) == 2
    assert capsys.readouterr().err.strip() == ("python -m tuning search: error: --frames 16,48: "
                                               "every frame must fit --frame-span 32 (frame 48)")


def test_space_keeps_booleans_and_gives_raw_trials_no_frame():
    space = SearchSpace(front_ends=("spectral", "raw"), frames=(16, 32), hop_fractions=(0.5, 1.0),
                        augment=(0.0, 0.5), temperature_scaling=(True, False))
    base = TrainConfig(window=64, pool=2)
    hp = kt.HyperParameters()
    space.config(hp, base)  # declares the hyperparameters
    for front_end, scaling in (("raw", False), ("spectral", True)):
        hp.values.update(front_end=front_end, temperature_scaling=scaling, frame=32,
                         hop_fraction=0.5, augment=0.5)
        config = space.config(hp, base)
        assert config.temperature_scaling is scaling and hp["temperature_scaling"] is scaling
        assert hp.is_active("frame") == hp.is_active("hop_fraction") == (front_end != "raw")
        assert (config.frame, config.hop) == ((32, 16) if front_end != "raw" else
                                              (base.frame, base.hop))
        assert config.augment_shift == round(base.augment_shift * 0.5)
        assert config.augment_noise == pytest.approx(base.augment_noise * 0.5)


def test_best_config_keeps_the_choice_and_drops_the_search_budget():
    chosen = {**BASE.to_dict(), "window": 64, "lstm_units": [32, 32], "learning_rate": 0.003,
              "epochs": 10, "patience": 3}
    trials = [TrialSummary(trial_id="7", status="COMPLETED", hyperparameters={}, score=1.0,
                           best_epoch=4, metrics={}, epochs=[], seconds=1.0, config=chosen,
                           initial_epoch=0, parent=None)]
    best = best_config(trials)
    assert (best.lstm_units, best.learning_rate, best.window) == ((32, 32), 0.003, 64)
    assert (best.epochs, best.patience) == (BASE.epochs, BASE.patience)


def test_hyperband_continues_trials_from_earlier_epochs(trainer_data_dir, tmp_path):
    tuner_dir = str(tmp_path / "hyperband")
    # 3 epochs (TINY_SEARCH_ARGS), so that hyperband has a second round.
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", tuner_dir,
                 "--algorithm", "hyperband", "--hyperband-factor", "3", *TINY_SEARCH_ARGS]) == 0
    records = _records(tuner_dir)
    continued = [r for r in records.values() if r["record"]["initial_epoch"] > 0]
    assert continued, "hyperband ran no second-round trial"
    for r in continued:
        hp = r["trial"].hyperparameters.values
        assert r["record"]["epochs"][0]["epoch"] == hp["tuner/initial_epoch"]
        parent = records[hp["tuner/trial_id"]]
        assert parent["record"]["config"] == r["record"]["config"]
    # The report's best epochs count as the records do; keras-tuner's from each run's start.
    for t in load_trials(tuner_dir):
        assert t.best_epoch == records[t.trial_id]["trial"].best_step + t.initial_epoch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_run_every_trial_once(trainer_data_dir, tmp_path):
    tuner_dir = str(tmp_path / "distributed")
    command = [sys.executable, "-m", "tuning", "search", "--data", trainer_data_dir,
               "--tuner-dir", tuner_dir, "--algorithm", "random", "--max-trials", "4",
               *TINY_SEARCH_ARGS, "--epochs", "1"]  # later options win
    port = str(_free_port())
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": port, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": REPO}
        processes[tuner_id] = subprocess.Popen(
            command, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    outputs = {}
    for tuner_id, process in processes.items():
        outputs[tuner_id], _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"{tuner_id} failed:\n{outputs[tuner_id][-3000:]}"
    records = _records(tuner_dir)
    assert len(records) == 4
    for r in records.values():
        assert r["trial"].status == "COMPLETED"
        assert r["record"]["attempts"] == 1
        assert r["record"]["tuner_id"] in ("tuner0", "tuner1")  # the chief only serves


def test_a_search_prints_one_line_per_trial_not_keras_tuners_tables(
        trainer_data_dir, tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="tuning")
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", str(tmp_path / "t"),
                 "--algorithm", "random", "--max-trials", "2", *TINY_SEARCH_ARGS,
                 "--epochs", "1"]) == 0
    printed = capsys.readouterr()
    assert "Search: Running Trial" not in printed.out + printed.err
    assert "Best Value So Far" not in printed.out + printed.err
    lines = [r.getMessage() for r in caplog.records if r.name == "tuning.hypermodel"]
    assert len(lines) == 2 and all(OBJECTIVE_NAME in line and "units_0" in line
                                   for line in lines), lines
