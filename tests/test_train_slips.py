"""Training slips: numbers out of range refused up front (trainer and tuning), a loss that
becomes NaN or inf stops the run keeping its last good checkpoint and exporting nothing (a
tuning trial fails instead), and data whose sessions are shorter than the window said in
one line before a model is built."""
from __future__ import annotations

import glob
import json
import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.config import ConfigError, TrainConfig
from trainer.runs import run_dir
from trainer.task import _parser as trainer_parser
from trainer.task import main as trainer_main
from trainer_fixtures import TINY_TRAIN_ARGS, FixtureSpec, write_fixture_data
from tuning.space import SearchSpace, SpaceError
from tuning.task import _parser as tuning_parser
from tuning.task import main as tuning_main

TRAIN = ["train", "--data", "d", "--job-dir", "j"]
SEARCH = ["search", "--data", "d", "--tuner-dir", "t"]
POSITIVE = "a finite number > 0"
SHARE = "a number in [0, 1)"


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def _only_run(job_dir: str) -> run_dir.RunPaths:
    runs = glob.glob(os.path.join(job_dir, "runs", "*"))
    assert len(runs) == 1, runs
    return run_dir.find_run(runs[0])


def _checkpoint_steps(directory: str) -> list[int]:
    return sorted(int(re.search(r"ckpt-(\d+)\.index$", p).group(1))
                  for p in glob.glob(os.path.join(directory, "ckpt-*.index")))


# --- 1: every numeric option declares its range; argparse and the dataclass refuse it


@pytest.mark.parametrize("option, value, allowed", [
    ("--learning-rate", "-1", POSITIVE), ("--learning-rate", "0", POSITIVE),
    ("--learning-rate", "nan", POSITIVE), ("--learning-rate", "inf", POSITIVE),
    ("--weight-decay", "-0.01", "a finite number >= 0"),
    ("--augment-noise", "nan", "a finite number >= 0"),
    ("--dropout", "1", SHARE), ("--label-smoothing", "-0.1", SHARE),
    ("--sampling-density", "0", "a number in (0, 1]"),
    ("--epochs", "0", "an integer >= 1"), ("--patience", "-1", "an integer >= 0"),
    ("--window", "0", "an integer >= 1"), ("--frame-span", "0", "an integer >= 1"),
    ("--seed", "-1", "an integer in [0, 2147483647]"),
])
def test_trainer_options_out_of_range_are_refused_naming_the_range(option, value, allowed,
                                                                     capsys):
    with pytest.raises(SystemExit) as exit:
        trainer_parser().parse_args([*TRAIN, option, value])
    assert exit.value.code == 2
    assert f"argument {option}: {value!r} is not {allowed}" in capsys.readouterr().err


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": -1.0}, "learning_rate -1.0 outside the range of --learning-rate: "
                              + POSITIVE),
    ({"learning_rate": 0.0}, "learning_rate 0.0 outside the range of --learning-rate"),
    ({"learning_rate": math.nan}, "learning_rate nan outside the range of --learning-rate"),
    ({"weight_decay": math.inf}, "weight_decay inf outside the range of --weight-decay"),
    ({"augment_gain": math.nan}, "augment_gain nan outside the range of --augment-gain"),
    ({"seed": -1}, "seed -1 outside the range of --seed"),
    ({"window": 0}, "window 0 outside the range of --window: an integer >= 1"),
    ({"frame_span": 0, "front_end": "raw"}, "frame_span 0 outside the range of --frame-span"),
])
def test_the_config_refuses_what_the_options_refuse(values, message):
    """Python callers and tuning's base config go through the same ranges."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(**values)


@pytest.mark.parametrize("text, message", [
    ('{"learning_rate": -1}', "learning_rate -1.0 outside the range of --learning-rate: "
                              + POSITIVE),
    ('{"epochs": 2.5}', "epochs: 2.5 is not an integer"),
    ('{"epochs": Infinity}', "epochs: inf is not an integer"),
])
def test_a_config_file_out_of_range_is_one_line(text, message, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(text)
    assert trainer_main(["train", "--data", str(tmp_path / "none"), "--job-dir",
                         str(tmp_path / "job"), "--config", str(path)]) == 2
    line = _one_error_line(capsys, "python -m trainer train")
    assert f"{path}: {message}" in line


@pytest.mark.parametrize("args, message", [
    (["--learning-rate-range", "0,1"], "argument --learning-rate-range: '0,1': LOW 0 is not "
                                       + POSITIVE),
    (["--learning-rate-range", "nan,1"], "argument --learning-rate-range: 'nan,1': LOW nan is "
                                         "not " + POSITIVE),
    (["--learning-rate-range=-1,1"], "argument --learning-rate-range: '-1,1': LOW -1 is not"),
    (["--learning-rate-range", "1e-3,inf"], "'1e-3,inf': HIGH inf is not " + POSITIVE),
    (["--dropout-range", "0,1"], "argument --dropout-range: '0,1': HIGH 1 is not " + SHARE),
    (["--augment", "1,nan"], "argument --augment: '1,nan': 'nan' is not a finite number >= 0"),
    (["--units", "8,0"], "argument --units: '8,0': '0' is not an integer >= 1"),
    (["--max-layers", "0"], "argument --max-layers: '0' is not an integer >= 1"),
    (["--max-trials", "0"], "argument --max-trials: '0' is not an integer >= 1"),
    (["--hyperband-factor", "1"], "argument --hyperband-factor: '1' is not an integer >= 2"),
    (["--weight-decay", "inf"], "argument --weight-decay: 'inf' is not a finite number >= 0"),
])
def test_tuning_options_out_of_range_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        tuning_parser().parse_args([*SEARCH, *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": (0.0, 1.0)}, "--learning-rate-range 0,1: LOW 0 is not " + POSITIVE),
    ({"learning_rate": (math.nan, 1.0)}, "--learning-rate-range nan,1: LOW nan is not"),
    ({"dropout": (0.0, 1.0)}, "--dropout-range 0,1: HIGH 1 is not " + SHARE),
    ({"augment": (1.0, math.inf)}, "--augment 1,inf: inf is not a finite number >= 0"),
    ({"hop_fractions": (math.nan,)}, "--hop-fractions nan: each must be in (0, 1]"),
])
def test_the_search_space_refuses_what_the_options_refuse(values, message):
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace(**values)


# --- 2: a loss that becomes NaN or inf stops the run: last good checkpoint, no export


def _assert_stopped_without_export(job_dir: str, paths: run_dir.RunPaths) -> None:
    assert not os.listdir(paths.model)  # nothing exported
    assert not os.path.exists(os.path.join(job_dir, run_dir.LATEST))
    assert not run_dir.read_json(paths.file("run.json")).get("exported_epoch")


def test_a_huge_learning_rate_stops_the_run_at_the_step_its_loss_became_nan(
        trainer_data_dir, tmp_path, capsys):
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", trainer_data_dir, "--job-dir", job_dir,
                         *TINY_TRAIN_ARGS, "--learning-rate", "1e38", "--epochs", "2",
                         "--steps-per-epoch", "5"]) == 1
    line = _one_error_line(capsys, "python -m trainer train")
    assert re.search(r"error: the training loss became (nan|inf) at step [1-5] \(epoch 1\); "
                     r"the run stops: no checkpoint was written before it and nothing is "
                     r"exported; lower --learning-rate \(1e\+38 now\)", line), line
    paths = _only_run(job_dir)
    _assert_stopped_without_export(job_dir, paths)
    assert tf.train.latest_checkpoint(paths.checkpoints) is None


def test_nan_windows_after_the_first_epoch_keep_its_checkpoint(
        trainer_data_dir, tmp_path, capsys, monkeypatch):
    """Windows turn NaN from step 8 on (epoch 2 of 5-step epochs): the run stops there,
    and its checkpoint of step 5 (and the best epoch's) are what remain."""
    from trainer.data.device_windows import DeviceWindows

    batch = DeviceWindows.replica_batch

    def poisoned(self, step):
        windows, labels, weights = batch(self, step)
        return tf.where(step >= 8, windows * np.nan, windows), labels, weights

    monkeypatch.setattr(DeviceWindows, "replica_batch", poisoned)
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", trainer_data_dir, "--job-dir", job_dir,
                         *TINY_TRAIN_ARGS, "--epochs", "3", "--steps-per-epoch", "5",
                         "--checkpoint-every-steps", "5"]) == 1
    paths = _only_run(job_dir)
    line = _one_error_line(capsys, "python -m trainer train")
    assert ("the training loss became nan at step 8 (epoch 2); the run stops: its last good "
            f"checkpoint (step 5) is kept in {paths.checkpoints} and nothing is exported"
            in line), line
    _assert_stopped_without_export(job_dir, paths)
    assert _checkpoint_steps(paths.checkpoints) == [5]
    assert _checkpoint_steps(os.path.join(paths.checkpoints, "best")) == [5]
    metrics = run_dir.read_json(paths.file("metrics.json"))
    assert [e["epoch"] for e in metrics["epochs"]] == [1] and not metrics["complete"]
    # The kept checkpoint holds finite weights, and IN_PROGRESS still names the run.
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(paths.checkpoints))
    values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
              if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    floats = [v for v in values if np.asarray(v).dtype.kind == "f"]
    assert len(floats) > 10 and all(np.isfinite(v).all() for v in floats)
    with open(os.path.join(job_dir, run_dir.IN_PROGRESS)) as f:
        assert f.read().strip() == paths.run_id


class _NanFrom(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that turns NaN at an optimizer iteration: the loss of that step
    is still finite (computed before the update), the weights after it are not."""

    def __init__(self, rate: float, iteration: int):
        self.rate, self.iteration = rate, iteration

    def __call__(self, step):
        return tf.where(step >= self.iteration, np.float32(np.nan), np.float32(self.rate))

    def get_config(self):
        return {"rate": self.rate, "iteration": self.iteration}


def test_weights_that_became_nan_are_not_checkpointed(trainer_data_dir, tmp_path, capsys,
                                                      monkeypatch):
    """The update of step 6 makes the weights NaN while its loss is finite: the
    checkpoint due at step 6 is not written, so the last one (step 5) stays good."""
    adam = keras.optimizers.Adam
    monkeypatch.setattr(keras.optimizers, "Adam", lambda rate: adam(_NanFrom(rate, 5)))
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", trainer_data_dir, "--job-dir", job_dir,
                         *TINY_TRAIN_ARGS, "--epochs", "2", "--steps-per-epoch", "5",
                         "--checkpoint-every-steps", "3", "--steps-per-execution", "3"]) == 1
    paths = _only_run(job_dir)
    line = _one_error_line(capsys, "python -m trainer train")
    assert ("the model's weights became nan at step 6 (epoch 2); the run stops: its last "
            "good checkpoint (step 5) is kept" in line), line
    _assert_stopped_without_export(job_dir, paths)
    assert _checkpoint_steps(paths.checkpoints) == [3, 5]


def test_a_nan_validation_loss_stops_the_run_before_that_epoch_is_checkpointed(
        trainer_data_dir, tmp_path, capsys, monkeypatch):
    from trainer.data import device_windows

    load_valid_split = device_windows.load_valid_split

    def poisoned(*args):
        held = load_valid_split(*args)
        return device_windows.HeldValidation(held.signals * np.nan, held.ends, held.labels)

    monkeypatch.setattr(device_windows, "load_valid_split", poisoned)
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", trainer_data_dir, "--job-dir", job_dir,
                         *TINY_TRAIN_ARGS, "--epochs", "2", "--steps-per-epoch", "5",
                         "--checkpoint-every-steps", "3"]) == 1
    paths = _only_run(job_dir)
    line = _one_error_line(capsys, "python -m trainer train")
    assert ("the validation loss became nan at step 5 (epoch 1); the run stops: its last "
            "good checkpoint (step 3) is kept" in line), line
    _assert_stopped_without_export(job_dir, paths)
    assert _checkpoint_steps(paths.checkpoints) == [3]
    assert not _checkpoint_steps(os.path.join(paths.checkpoints, "best"))


SEARCH_ARGS = ["--algorithm", "random", "--max-layers", "1", "--units", "8",
               "--batch-sizes", "32", "--dropout-range", "0,0", "--frames", "32",
               "--hop-fractions", "0.5",
               "--augment", "0,1", "--epochs", "2", "--steps-per-epoch", "3",
               "--valid-batch-size", "256", "--seed", "1"]


def test_a_tuning_trial_whose_loss_becomes_nan_fails_and_the_search_goes_on(
        trainer_data_dir, tmp_path, capsys):
    """Every trial diverges: each is a failed trial (the search goes on to the next),
    and a search that finished no trial ends in one line, status 1."""
    import keras_tuner as kt

    tuner_dir = str(tmp_path / "tuner")
    assert tuning_main(["search", "--data", trainer_data_dir, "--tuner-dir", tuner_dir,
                        "--max-trials", "2", "--learning-rate-range", "1e38,3e38",
                        *SEARCH_ARGS]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("python -m tuning search: error: no trial finished: the 2 trials "
                           "failed (the last: the training loss became"), line
    trials = [kt.engine.trial.Trial.load(p) for p in
              glob.glob(os.path.join(tuner_dir, "pilotstate", "trial_*", "trial.json"))]
    assert len(trials) == 2 and {t.status for t in trials} == {"FAILED"}
    for path in glob.glob(os.path.join(tuner_dir, "pilotstate", "trial_*",
                                       "pilotstate_trial.json")):
        with open(path) as f:
            record = json.load(f)
        assert not record["complete"] and record["diverged"]["step"] >= 1


# --- 3: sessions shorter than the window: one line, before anything is built


def _short_sessions(out_dir: str, **spec) -> str:
    os.makedirs(out_dir)
    write_fixture_data(out_dir, FixtureSpec(**spec))
    return out_dir


def test_sessions_shorter_than_the_window_are_said_in_one_line(tmp_path, capsys):
    data_dir = _short_sessions(str(tmp_path / "data"), rows_per_session=60,
                               label_block_rows=(10, 20), short_run_rows=10)
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", data_dir, "--job-dir", job_dir,
                         *TINY_TRAIN_ARGS]) == 2
    line = _one_error_line(capsys, "python -m trainer train")
    assert (f"{data_dir}: the training split holds no window of 64 rows (its 6 segments hold "
            "60 rows on average): re-run beam_preprocess with a smaller --window" in line), line
    assert not os.path.exists(os.path.join(job_dir, "runs"))  # refused before the run


def test_a_validation_split_without_windows_is_said_before_training(tmp_path, capsys):
    data_dir = _short_sessions(str(tmp_path / "data"), valid_windows_per_class=0)
    job_dir = str(tmp_path / "job")
    assert trainer_main(["train", "--data", data_dir, "--job-dir", job_dir,
                         *TINY_TRAIN_ARGS]) == 2
    line = _one_error_line(capsys, "python -m trainer train")
    assert f"{data_dir}: the validation split holds no window of 64 rows" in line, line
    assert not os.path.exists(os.path.join(job_dir, "runs"))
