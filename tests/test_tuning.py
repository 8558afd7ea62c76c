"""A small real keras-tuner search on the sine fixture: trial batch sizes, resume,
settings checks, hyperband continuation, the report, and the exported config."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import keras_tuner as kt
import pytest
import tensorflow as tf

from tuning.hypermodel import TRIAL_RECORD
from tuning.report import load_trials
from tuning.search import PROJECT
from tuning.task import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SEARCH_ARGS = ["--max-layers", "2", "--units", "8,16", "--batch-sizes", "16,32",
                    "--learning-rate-range", "0.003,0.02", "--dropout-range", "0,0.2",
                    "--pool", "2", "--epochs", "2", "--steps-per-epoch", "15",
                    "--valid-batch-size", "256"]



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


def test_each_trial_trains_with_its_own_batch_size(random_search):
    records = _records(random_search)
    assert len(records) == 3
    for r in records.values():
        hp, config = r["trial"].hyperparameters.values, r["record"]["config"]
        assert r["trial"].status == "COMPLETED"
        assert config["global_batch_size"] == hp["batch_size"]
        assert len(config["lstm_units"]) == hp["lstm_layers"]
        assert config["lstm_units"] == [hp[f"units_{i}"] for i in range(hp["lstm_layers"])]
        assert config["learning_rate"] == pytest.approx(hp["learning_rate"])
        assert r["record"]["complete"] and r["record"]["attempts"] == 1
        assert r["trial"].score == pytest.approx(
            min(e["val_balanced_log_loss"] for e in r["record"]["epochs"]))
    assert len({r["record"]["config"]["global_batch_size"] for r in records.values()}) == 2


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


def test_other_settings_in_the_same_directory_are_refused(random_search, trainer_data_dir):
    with pytest.raises(ValueError, match="other settings.*space"):
        main(["search", "--data", trainer_data_dir, "--tuner-dir", random_search,
              "--algorithm", "random", "--max-trials", "4",
              *TINY_SEARCH_ARGS[:3], "8,32", *TINY_SEARCH_ARGS[4:]])


def test_report_lists_every_trial_and_the_exported_config_trains(random_search, trainer_data_dir,
                                                                  tmp_path, capsys):
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
                 "objective_vs_learning_rate.png", "best_config.json"):
        assert os.path.getsize(os.path.join(report_dir, name)) > 0, name
    assert tf.io.gfile.glob(os.path.join(report_dir, "hparams", trials[0].trial_id, "events.*"))

    with open(os.path.join(report_dir, "best_config.json")) as f:
        best = json.load(f)
    assert best["global_batch_size"] == trials[0].hyperparameters["batch_size"]
    assert best["epochs"] == trials[0].best_epoch + 1

    from trainer.task import main as trainer_main
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", trainer_data_dir, "--job-dir", job_dir,
                         "--config", os.path.join(report_dir, "best_config.json")]) == 0
    latest = open(os.path.join(job_dir, "LATEST")).read().strip()
    with open(os.path.join(job_dir, "runs", latest, "config.json")) as f:
        assert json.load(f) == best
    with open(os.path.join(job_dir, "runs", latest, "metrics.json")) as f:
        assert json.load(f)["complete"]


def test_hyperband_continues_trials_from_earlier_epochs(trainer_data_dir, tmp_path):
    tuner_dir = str(tmp_path / "hyperband")
    # Later trainer options win: 3 epochs, so that hyperband has a second round.
    assert main(["search", "--data", trainer_data_dir, "--tuner-dir", tuner_dir,
                 "--algorithm", "hyperband", "--hyperband-factor", "3", *TINY_SEARCH_ARGS,
                 "--epochs", "3"]) == 0
    records = _records(tuner_dir)
    continued = [r for r in records.values() if r["record"]["initial_epoch"] > 0]
    assert continued, "hyperband ran no second-round trial"
    for r in continued:
        hp = r["trial"].hyperparameters.values
        assert r["record"]["epochs"][0]["epoch"] == hp["tuner/initial_epoch"]
        parent = records[hp["tuner/trial_id"]]
        assert parent["record"]["config"] == r["record"]["config"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_run_every_trial_once(trainer_data_dir, tmp_path):
    tuner_dir = str(tmp_path / "distributed")
    command = [sys.executable, "-m", "tuning", "search", "--data", trainer_data_dir,
               "--tuner-dir", tuner_dir, "--algorithm", "random", "--max-trials", "4",
               *TINY_SEARCH_ARGS]
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
