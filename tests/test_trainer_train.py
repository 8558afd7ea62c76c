"""Training runs: a tiny run end to end, two replicas, and resume after a real kill."""
import glob
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.data import datasets as data
from trainer.runs import run_dir
from trainer.task import main
from trainer_fixtures import TINY_TRAIN_ARGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs `python -m trainer` with the CPU split into two logical devices, which must
# happen before TensorFlow initialises: hence a fresh interpreter.
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from trainer.task import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


def _only_run(job_dir: str) -> run_dir.RunPaths:
    runs = glob.glob(os.path.join(job_dir, "runs", "*"))
    assert len(runs) == 1, runs
    return run_dir.find_run(runs[0])


def _summary_tags(log_dir: str) -> set:
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "*", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add((os.path.basename(os.path.dirname(path)), value.tag,
                          value.metadata.plugin_data.plugin_name))
    return tags


def test_tiny_run_learns_and_records_everything(trainer_trained_job, trainer_data_dir):
    paths = run_dir.find_run(trainer_trained_job)
    metrics = run_dir.read_json(paths.file("metrics.json"))
    assert metrics["complete"] and metrics["steps"] == metrics["total_steps"] == 120
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    final = metrics["final"]
    assert final["balanced_log_loss"] < 0.6 < math.log(4)
    assert all(final["per_class"][c]["log_loss"] < 1.0 for c in "ABCD")
    assert np.trace(np.array(final["confusion"])) / final["count"] > 0.8

    info = run_dir.read_json(paths.file("run.json"))
    assert info["data_fingerprint"] == run_dir.fingerprint(data.read_manifest(trainer_data_dir))
    assert info["package_version"] and info["training_prior"] == [0.25] * 4
    assert run_dir.read_json(paths.file("config.json"))["window"] == 64
    assert paths.run_id.endswith(run_dir.read_json(paths.file("run.json"))["run_id"][-8:])
    assert not os.path.exists(os.path.join(trainer_trained_job, run_dir.IN_PROGRESS))

    model = keras.models.load_model(paths.keras_model)
    assert model.output_shape == (None, 4)
    assert tf.saved_model.load(paths.saved_model).signatures  # a serving signature
    assert glob.glob(os.path.join(paths.checkpoints, "ckpt-120.index"))
    for name in ("loss.png", "confusion.png", "session.png"):
        with open(paths.file(f"plots/{name}"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    tags = _summary_tags(paths.tensorboard)
    assert ("train", "loss", "scalars") in tags
    assert ("valid", "log_loss/B", "scalars") in tags
    assert ("valid", "logits/D", "histograms") in tags


def test_two_replicas_on_two_logical_cpus(trainer_data_dir, tmp_path):
    job_dir = str(tmp_path / "job")
    args = ["train", "--data", trainer_data_dir, "--job-dir", job_dir, *TINY_TRAIN_ARGS,
            "--epochs", "1", "--steps-per-epoch", "30", "--devices", "/cpu:0,/cpu:1"]
    done = subprocess.run([sys.executable, "-c", TWO_CPUS, *args], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training windows cut on the device" in done.stderr  # a copy on each replica
    paths = _only_run(job_dir)
    info = run_dir.read_json(paths.file("run.json"))
    assert info["replicas"] == 2
    assert [d.split("/")[-1] for d in info["devices"]] == ["device:CPU:0", "device:CPU:1"]
    metrics = run_dir.read_json(paths.file("metrics.json"))
    assert metrics["steps"] == 30 and metrics["final"]["log_loss"] < math.log(4)


def test_global_batch_must_split_over_replicas(trainer_data_dir, tmp_path):
    args = ["train", "--data", trainer_data_dir, "--job-dir", str(tmp_path), *TINY_TRAIN_ARGS,
            "--global-batch-size", "33", "--devices", "/cpu:0,/cpu:1"]
    done = subprocess.run([sys.executable, "-c", TWO_CPUS, *args], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "global_batch_size 33 is not a multiple of the 2 replicas" in done.stderr


def _latest_checkpoint_step(job_dir: str) -> int:
    """The step a resume would restore: the checkpoint the `checkpoint` state file names
    (a kill can land between writing a checkpoint's files and updating that file)."""
    latest = [tf.train.latest_checkpoint(d)
              for d in glob.glob(os.path.join(job_dir, "runs", "*", "checkpoints"))]
    return max((int(p.rsplit("-", 1)[1]) for p in latest if p), default=0)


def test_resume_after_kill_ends_with_the_same_steps(trainer_data_dir, tmp_path):
    """On the streaming input pipeline (--device-data-mb 0; the device path's exact
    resume is tested in test_device_windows.py)."""
    job_dir = str(tmp_path / "job")
    args = ["train", "--data", trainer_data_dir, "--job-dir", job_dir, *TINY_TRAIN_ARGS,
            "--epochs", "4", "--steps-per-epoch", "50", "--checkpoint-every-steps", "5",
            "--device-data-mb", "0"]
    process = subprocess.Popen([sys.executable, "-m", "trainer", *args], env=_env(), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _latest_checkpoint_step(job_dir) < 15 and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL, "run ended before the kill"
    finally:
        if process.poll() is None:
            process.kill()
    killed_at = _latest_checkpoint_step(job_dir)
    assert 15 <= killed_at < 200
    assert os.path.exists(os.path.join(job_dir, run_dir.IN_PROGRESS))
    killed_run = _only_run(job_dir).run_id

    assert main(args) == 0
    paths = _only_run(job_dir)  # the same run directory, resumed
    assert paths.run_id == killed_run
    metrics = run_dir.read_json(paths.file("metrics.json"))
    assert metrics["complete"] and metrics["steps"] == 200
    assert metrics["resumed_from_steps"] == [killed_at]
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4]
    assert not os.path.exists(os.path.join(job_dir, run_dir.IN_PROGRESS))
    assert run_dir.find_run(job_dir).run_id == killed_run  # LATEST


# A learning rate at which the tiny model's balanced validation loss is best before
# the last of 8 epochs (deterministic for the seed), with labels trained to certainty
# (no smoothing, which would keep the later epochs from getting worse).
OVERSHOOTING = [*TINY_TRAIN_ARGS, "--learning-rate", "0.2", "--epochs", "8",
                "--steps-per-epoch", "10", "--label-smoothing", "0"]


def _validation_balanced_log_loss(model: keras.Model, data_dir: str, config) -> float:
    from trainer.model.network import logits_function
    from trainer.training.loop import validation_logits
    from trainer.shared.metrics import classification_metrics, softmax

    manifest = data.read_manifest(data_dir)
    logits, labels = validation_logits(logits_function(model, config.window),
                                       data.valid_dataset(data_dir, manifest, config))
    return classification_metrics(softmax(logits), labels)["balanced_log_loss"]


def test_the_exported_model_is_the_best_epoch_not_the_last(trainer_data_dir, tmp_path):
    from trainer.config import TrainConfig

    job_dir = str(tmp_path / "job")
    assert main(["train", "--data", trainer_data_dir, "--job-dir", job_dir, *OVERSHOOTING,
                 "--patience", "0"]) == 0
    paths = _only_run(job_dir)
    metrics = run_dir.read_json(paths.file("metrics.json"))
    losses = [e["valid"]["balanced_log_loss"] for e in metrics["epochs"]]
    assert len(losses) == 8 and losses[-1] > min(losses)  # the last epoch is not the best
    best = int(np.argmin(losses)) + 1
    assert metrics["best"]["epoch"] == best and metrics["best"]["step"] == 10 * best
    assert run_dir.read_json(paths.file("run.json"))["exported_epoch"] == best
    assert glob.glob(os.path.join(paths.checkpoints, "best", f"ckpt-{10 * best}.index"))

    config = TrainConfig.load(paths.file("config.json"))
    exported = keras.models.load_model(paths.keras_model)
    assert _validation_balanced_log_loss(exported, trainer_data_dir, config) == \
        pytest.approx(min(losses), abs=1e-4)
    # The temperature fitted on validation does not make the exported model worse there.
    assert metrics["best"]["calibrated"]["balanced_log_loss"] <= min(losses) + 1e-9


def test_early_stopping_after_patience_epochs_without_improvement(trainer_data_dir, tmp_path):
    job_dir = str(tmp_path / "job")
    assert main(["train", "--data", trainer_data_dir, "--job-dir", job_dir, *OVERSHOOTING,
                 "--patience", "2"]) == 0
    metrics = run_dir.read_json(_only_run(job_dir).file("metrics.json"))
    losses = [e["valid"]["balanced_log_loss"] for e in metrics["epochs"]]
    best = int(np.argmin(losses)) + 1
    assert len(losses) == best + 2 < 8  # stopped two epochs after the best one
    assert metrics["complete"] and metrics["best"]["epoch"] == best


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_training_loss_is_against_smoothed_labels(smoothing):
    """One step's loss is the cross-entropy against (1 - s) one-hot + s / 4, times each
    window's weight, averaged over the global batch (checked against numpy, computed from
    the model's logits before the step)."""
    from trainer.config import TrainConfig
    from trainer.model.network import build_model
    from trainer.training.loop import make_optimizer, make_step_counter, make_train_steps
    from trainer.shared.metrics import softmax

    config = TrainConfig(window=64, frame=32, hop=16, lstm_units=(8,), dropout=0.0,
                         feature_dropout=0.0, global_batch_size=8, label_smoothing=smoothing)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 64, 23)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3], np.int32)
    weight = rng.uniform(0.5, 2.0, size=8).astype(np.float32)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model = build_model(config)
    probs = softmax(model(x, training=False).numpy().astype(np.float64))
    target = (1 - smoothing) * np.eye(4)[y] + smoothing / 4
    expected = float(np.mean(-(target * np.log(probs)).sum(1) * weight))
    steps = make_train_steps(model, make_optimizer(model, config, strategy), strategy, config,
                             make_step_counter(strategy))
    batches = iter(tf.data.Dataset.from_tensors((x, y, weight)).repeat())
    (loss,) = steps(batches, tf.constant(1)).numpy()
    assert loss == pytest.approx(expected, rel=1e-4)
