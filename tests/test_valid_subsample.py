"""Each epoch scored on a fixed, seeded subsample of the validation split, the exported
epoch on all of it, the split held in memory where it is scored: issue 27."""
import glob
import os

import numpy as np
import pytest

from trainer.config import ConfigError, TrainConfig
from trainer.data import datasets as data
from trainer.data import device_windows
from trainer.data.device_windows import HeldSplitCache, ValidScorer, ValidWindows, load_valid_split
from trainer.records import spec
from trainer.runs import run_dir
from trainer.task import main
from trainer_fixtures import TINY_TRAIN_ARGS

PER_CLASS = 10
QUICK = [*TINY_TRAIN_ARGS, "--epochs", "3", "--steps-per-epoch", "5"]


def _labels(counts=(50, 50, 50, 50)) -> np.ndarray:
    """Window labels as a balanced split holds them: the classes interleaved."""
    rng = np.random.default_rng(7)
    return rng.permutation(np.repeat(np.arange(spec.NUM_CLASSES), counts))


def test_the_subsample_is_balanced_capped_and_fixed_by_its_seed():
    labels = _labels()
    chosen = data.valid_subsample(labels, 12, seed=3)
    assert np.all(np.diff(chosen) > 0)  # ascending, no window twice
    assert np.bincount(labels[chosen], minlength=4).tolist() == [12] * 4
    np.testing.assert_array_equal(chosen, data.valid_subsample(labels, 12, seed=3))
    assert not np.array_equal(chosen, data.valid_subsample(labels, 12, seed=4))
    # A smaller subsample of a seed is part of the larger one (n is the noise knob).
    assert set(data.valid_subsample(labels, 5, seed=3)) <= set(chosen)


def test_the_cap_takes_all_of_a_smaller_class_and_0_takes_everything():
    labels = _labels((50, 8, 50, 50))
    chosen = data.valid_subsample(labels, 12, seed=0)
    assert np.bincount(labels[chosen], minlength=4).tolist() == [12, 8, 12, 12]
    np.testing.assert_array_equal(data.valid_subsample(labels, 0, seed=0), np.arange(158))
    np.testing.assert_array_equal(data.valid_subsample(labels, 50, seed=0), np.arange(158))


def test_option_range():
    assert TrainConfig().valid_windows_per_class == 2000
    assert TrainConfig(valid_windows_per_class=0).valid_windows_per_class == 0
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="--valid-windows-per-class"):
            TrainConfig(valid_windows_per_class=bad)
    with pytest.raises(ConfigError, match="valid_windows_per_class"):
        TrainConfig.from_dict({"valid_windows_per_class": "many"})


def test_option_range_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", "D", "--job-dir", "J", "--valid-windows-per-class", "-5"])
    assert exit_.value.code == 2
    assert "'-5' is not an integer >= 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def manifest(trainer_data_dir) -> dict:
    return data.read_manifest(trainer_data_dir)


def test_held_validation_cuts_the_windows_valid_dataset_streams(trainer_data_dir, manifest):
    """Same windows, same labels, same order as the tf.data pipeline; the subsample is
    cut from the same rows."""
    config = data.resolve_window(TrainConfig(valid_windows_per_class=PER_CLASS), manifest)
    held = load_valid_split(trainer_data_dir, manifest, config)
    streamed = list(data.valid_dataset(trainer_data_dir, manifest, config).as_numpy_iterator())
    windows = np.concatenate([x for x, _ in streamed])
    np.testing.assert_array_equal(held.labels, np.concatenate([y for _, y in streamed]))
    offsets = np.arange(1 - config.window, 1)
    np.testing.assert_array_equal(held.signals[held.ends[:, None] + offsets], windows)
    valid = ValidWindows(held, config, config.window)
    assert valid.is_subsample and len(valid.subsample) == 4 * PER_CLASS
    assert valid.describe().startswith(f"{PER_CLASS} of ")

    identity = lambda x, training: x[:, -1, :2]  # noqa: E731  a "model": a window's last row
    logits, labels = valid.scorer(identity)(valid.subsample)
    np.testing.assert_array_equal(logits, windows[valid.subsample, -1, :2])
    np.testing.assert_array_equal(labels, held.labels[valid.subsample])

    cache = HeldSplitCache()
    assert cache.valid(trainer_data_dir, manifest, config) is cache.valid(
        trainer_data_dir, manifest, config)


@pytest.mark.parametrize("front_end", ["spectral", "filterbank"])
def test_a_fixed_front_end_runs_once_and_gives_the_whole_models_logits(
        trainer_data_dir, manifest, front_end):
    """The spectral front end has no weights: the subsample's features are kept and each
    epoch runs the rest of the model on them; the filterbank's are learned: the whole
    model every time.  Either way the logits are the whole model's."""
    from trainer.model.network import build_model

    config = data.resolve_window(TrainConfig(
        valid_windows_per_class=PER_CLASS, front_end=front_end, frame=32, hop=16,
        lstm_units=(8,), valid_batch_size=16), manifest)
    valid = ValidWindows(load_valid_split(trainer_data_dir, manifest, config), config,
                         config.window)
    model = build_model(config)
    scorer = valid.scorer(model)
    assert scorer.caches_features == (front_end == "spectral")
    logits, labels = scorer.subsample()
    expected, expected_labels = scorer(valid.subsample)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, expected_labels)
    model.layers[-1].kernel.assign(model.layers[-1].kernel * 2)  # the next epoch's weights
    np.testing.assert_allclose(scorer.subsample()[0], scorer(valid.subsample)[0],
                               rtol=1e-5, atol=1e-6)


def _only_run(job_dir: str) -> run_dir.RunPaths:
    runs = glob.glob(os.path.join(job_dir, "runs", "*"))
    assert len(runs) == 1, runs
    return run_dir.find_run(runs[0])


def test_epochs_score_the_same_subsample_and_the_export_all_windows(
        trainer_data_dir, manifest, tmp_path, monkeypatch):
    scored = []  # the window indices of every scoring pass
    whole, subsample = ValidScorer.__call__, ValidScorer.subsample

    def spy_whole(self, indices):
        scored.append(np.array(indices))
        return whole(self, indices)

    def spy_subsample(self):
        scored.append(self.valid.subsample.copy())
        return subsample(self)

    monkeypatch.setattr(ValidScorer, "__call__", spy_whole)
    monkeypatch.setattr(ValidScorer, "subsample", spy_subsample)
    job_dir = str(tmp_path / "job")
    assert main(["train", "--data", trainer_data_dir, "--job-dir", job_dir, *QUICK,
                 "--valid-windows-per-class", str(PER_CLASS), "--patience", "0"]) == 0
    paths = _only_run(job_dir)
    metrics = run_dir.read_json(paths.file("metrics.json"))
    everything = sum(manifest["splits"]["valid"]["windows_per_class"].values())

    # Three epochs on one fixed subsample, then the exported epoch on every window.
    assert len(scored) == 4
    for indices in scored[1:3]:
        np.testing.assert_array_equal(indices, scored[0])
    np.testing.assert_array_equal(scored[3], np.arange(everything))
    for epoch in metrics["epochs"]:
        assert [epoch["valid"]["per_class"][c]["count"] for c in "ABCD"] == [PER_CLASS] * 4
        assert epoch["seconds"]["valid"] >= 0 and epoch["seconds"]["train"] > 0
    assert metrics["valid_windows"] == {"epochs": "subsample", "per_class": PER_CLASS,
                                        "seed": 0, "windows": 4 * PER_CLASS, "of": everything}

    # The exported epoch: chosen on the subsample, its metrics and temperature from all.
    best = metrics["best"]
    chosen = min(metrics["epochs"], key=lambda e: e["valid"]["balanced_log_loss"])
    assert best["epoch"] == chosen["epoch"]
    assert best["valid_subsample"] == chosen["valid"]
    assert best["valid"]["count"] == best["calibrated"]["count"] == everything
    assert best["calibrated"]["balanced_log_loss"] <= best["valid"]["balanced_log_loss"] + 1e-9
    assert run_dir.read_json(paths.file("run.json"))["temperature"] == best["temperature"]
    seconds = metrics["seconds"]
    assert 0 < seconds["valid"] < seconds["run"]
    assert seconds["valid"] == pytest.approx(
        seconds["valid_load"] + seconds["valid_epochs"] + seconds["valid_exported"], abs=0.01)

    # And the exported model scores that on the streamed split.
    import keras

    from trainer.model.network import logits_function
    from trainer.training.loop import validation_logits
    from trainer.shared.metrics import classification_metrics, softmax

    config = TrainConfig.load(paths.file("config.json"))
    logits, labels = validation_logits(
        logits_function(keras.models.load_model(paths.keras_model), config.window),
        data.valid_dataset(trainer_data_dir, manifest, config))
    assert classification_metrics(softmax(logits), labels)["balanced_log_loss"] == \
        pytest.approx(best["valid"]["balanced_log_loss"], abs=1e-5)


def test_a_nan_in_the_held_validation_stops_the_run(trainer_data_dir, tmp_path, monkeypatch):
    def poisoned(*args):
        held = load_valid_split(*args)
        return device_windows.HeldValidation(held.signals * np.nan, held.ends, held.labels)

    monkeypatch.setattr(device_windows, "load_valid_split", poisoned)
    job_dir = str(tmp_path / "job")
    assert main(["train", "--data", trainer_data_dir, "--job-dir", job_dir, *QUICK,
                 "--epochs", "2", "--checkpoint-every-steps", "3"]) == 1
    paths = _only_run(job_dir)
    assert not os.path.exists(paths.keras_model)
    assert not glob.glob(os.path.join(paths.checkpoints, "ckpt-5.*"))  # nor the epoch's end
