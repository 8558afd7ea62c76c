"""The training split held on the device (trainer/data/device_windows.py), several steps per
traced call, mixed precision, and exact resume: issue 13."""
import glob
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.data.device_windows import (DeviceWindows, HeldSplitCache, estimated_mib, load_split,
                                         step_seed)
from trainer.model.network import build_model, cudnn_blockers
from trainer.records import spec
from trainer.runs import run_dir
from trainer.training.loop import (make_optimizer, make_step_counter, make_train_steps,
                                   steps_until_sync)
from trainer_fixtures import TINY_TRAIN_ARGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(lstm_units=(16,), frame=32, hop=16, dropout=0.0, learning_rate=0.01,
            global_batch_size=32)


def _config(manifest: dict, **values) -> TrainConfig:
    return data.resolve_window(TrainConfig.from_dict({**TINY, **values}), manifest)


@pytest.fixture(scope="module")
def manifest(trainer_data_dir) -> dict:
    return data.read_manifest(trainer_data_dir)


@pytest.fixture(scope="module")
def held(trainer_data_dir, manifest):
    return load_split(trainer_data_dir, manifest, _config(manifest))


def _segments(data_dir: str, manifest: dict) -> list[dict]:
    paths = data.shard_paths(data_dir, manifest, "train")
    return list(data.parse_segments(data.read_records(paths, 4, None),
                                    (spec.SIGNALS, spec.LABELS, spec.CONTEXT_ROWS))
                .as_numpy_iterator())


def test_held_split_holds_every_row_and_every_stream_candidate(trainer_data_dir, manifest, held):
    """The rows are the records' rows; the candidate ends are exactly the ends the
    streaming pipeline may draw (>= the first full window of each segment)."""
    segments = _segments(trainer_data_dir, manifest)
    window = manifest["window"]
    np.testing.assert_array_equal(held.signals, np.concatenate([s[spec.SIGNALS] for s in segments]))
    expected, offset = [], 0
    for s in segments:
        rows = len(s[spec.LABELS])
        expected.extend(range(offset + max(int(s[spec.CONTEXT_ROWS]), window - 1), offset + rows))
        offset += rows
    assert sorted(held.ends.tolist()) == expected
    assert (np.diff(held.labels[held.ends]) >= 0).all()  # grouped by class
    assert held.ends_per_class.sum() == len(held.ends)
    assert estimated_mib(manifest, "train", window) * (1 << 20) >= held.nbytes


def test_held_split_cache_reads_a_split_once_per_window(trainer_data_dir, manifest, held):
    """A tuning search's trials share the held split; another window length gets its own,
    the same as load_split's."""
    cache = HeldSplitCache()
    first = cache(trainer_data_dir, manifest, _config(manifest))
    assert cache(trainer_data_dir, manifest, _config(manifest, lstm_units=(8,))) is first
    np.testing.assert_array_equal(first.ends, held.ends)
    shorter = cache(trainer_data_dir, manifest, _config(manifest, window=manifest["window"] // 2))
    assert shorter is not first and len(shorter.ends) > len(first.ends)
    np.testing.assert_array_equal(shorter.signals, first.signals)


def test_window_content_is_the_records_rows_ending_at_the_drawn_end(manifest, held):
    """Augmentation off: every on-device window is the `window` rows that end at its
    end, inside one segment, labelled by its last row, as the stream cuts them."""
    config = _config(manifest, augment_gain=0, augment_shift=0, augment_channel_dropout=0,
                     augment_noise=0)
    windows = DeviceWindows(held, manifest, config, tf.distribute.get_strategy())
    seed = step_seed(0, tf.constant(7), tf.constant(0))
    x, y, w = (t.numpy() for t in windows.batch(seed))
    # Recover each window's end from its content and check it is a candidate.
    window = config.window
    for k in range(len(x)):
        matches = [e for e in held.ends if np.array_equal(held.signals[e - window + 1:e + 1], x[k])]
        assert matches, f"window {k} is not a candidate window of the records"
        assert y[k] == held.labels[matches[0]]
    np.testing.assert_array_equal(w, np.ones_like(w))  # balanced by sampling: weight 1
    again = windows.batch(seed)[0].numpy()
    np.testing.assert_array_equal(again, x)  # same seed, same batch


def _class_shares(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels, minlength=4) / len(labels)


@pytest.mark.parametrize("balancing", ["sampling", "none"])
def test_class_shares_equal_the_streaming_pipelines(trainer_data_dir, manifest, held, balancing):
    config = _config(manifest, balancing=balancing, global_batch_size=256)
    windows = DeviceWindows(held, manifest, config, tf.distribute.get_strategy())
    on_device = np.concatenate([windows.batch(step_seed(0, tf.constant(s), tf.constant(0)))[1]
                                for s in range(40)])
    stream = data.train_dataset(trainer_data_dir, manifest, config, 256).take(40)
    streamed = np.concatenate([y.numpy() for _, y, _ in stream])
    assert np.abs(_class_shares(on_device) - _class_shares(streamed)).max() < 0.03
    if balancing == "sampling":
        np.testing.assert_allclose(_class_shares(on_device), 0.25, atol=0.03)


def _trained_weights(trainer_data_dir, manifest, held, config, calls: list[int]) -> list:
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = build_model(config)
    optimizer = make_optimizer(model, config, strategy)
    counter = make_step_counter(strategy)
    steps = make_train_steps(model, optimizer, strategy, config, counter,
                             DeviceWindows(held, manifest, config, strategy))
    losses = np.concatenate([steps(None, tf.constant(n)).numpy() for n in calls])
    assert int(counter.numpy()) == sum(calls) == len(losses)
    return [w.numpy() for w in model.weights]


def test_k_steps_in_one_call_equal_k_single_steps(trainer_data_dir, manifest, held):
    config = _config(manifest, dropout=0.2)
    together = _trained_weights(trainer_data_dir, manifest, held, config, [6])
    one_by_one = _trained_weights(trainer_data_dir, manifest, held, config, [1] * 6)
    for a, b in zip(together, one_by_one):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(together[-1], _trained_weights(
        trainer_data_dir, manifest, held, config, [5])[-1])  # the weights did move


def test_a_traced_call_never_crosses_an_epoch_end_or_a_checkpoint():
    config = TrainConfig(steps_per_epoch=25, checkpoint_every_steps=10, steps_per_execution=8)
    assert [steps_until_sync(s, 100, config) for s in (0, 8, 10, 16, 20, 24, 96)] == \
        [8, 2, 8, 4, 5, 1, 4]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_models_stay_cudnn_eligible_and_train(
        trainer_data_dir, manifest, held, precision):
    config = _config(manifest, precision=precision)
    model = build_model(config)
    assert cudnn_blockers(model) == []
    lstm = model.get_layer("lstm_0")
    assert lstm.compute_dtype == {"bf16": "bfloat16", "fp16": "float16"}[precision]
    assert lstm.variable_dtype == "float32" and model.output.dtype == "float32"
    strategy = tf.distribute.get_strategy()
    optimizer = make_optimizer(model, config, strategy)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "fp16")
    steps = make_train_steps(model, optimizer, strategy, config,
                             make_step_counter(strategy),
                             DeviceWindows(held, manifest, config, strategy))
    losses = steps(None, tf.constant(20)).numpy()
    assert np.isfinite(losses).all() and losses[-5:].mean() < losses[:5].mean()


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


def _checkpoint_steps(job_dir: str) -> list[int]:
    return sorted(int(p.rsplit("-", 1)[1].split(".")[0]) for p in
                  glob.glob(os.path.join(job_dir, "runs", "*", "checkpoints", "ckpt-*.index")))


def _final_weights(job_dir: str, step: int) -> dict:
    (path,) = glob.glob(os.path.join(job_dir, "runs", "*", "checkpoints", f"ckpt-{step}.index"))
    reader = tf.train.load_checkpoint(path[:-len(".index")])
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("optimizer/_trainable_variables/")}  # the weights


def test_resume_after_a_kill_inside_a_call_trains_the_same_weights(trainer_data_dir, tmp_path):
    """Killed while a 10-step call runs, resumed from the last checkpoint: the run ends
    with the weights of a run never killed (batches are a function of seed and step,
    and the dropout generators' state is checkpointed)."""
    args = ["train", "--data", trainer_data_dir, *TINY_TRAIN_ARGS, "--dropout", "0.2",
            "--epochs", "3", "--steps-per-epoch", "40", "--checkpoint-every-steps", "20",
            "--steps-per-execution", "10", "--patience", "0"]
    whole = str(tmp_path / "whole")
    subprocess.run([sys.executable, "-m", "trainer", *args, "--job-dir", whole], env=_env(),
                   cwd=REPO, check=True, capture_output=True, timeout=600)

    killed = str(tmp_path / "killed")
    process = subprocess.Popen([sys.executable, "-m", "trainer", *args, "--job-dir", killed],
                               env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while 40 not in _checkpoint_steps(killed) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.02)
        time.sleep(0.05)  # into the next calls, before the next checkpoint at step 60
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL, "run ended before the kill"
    finally:
        if process.poll() is None:
            process.kill()
    assert max(_checkpoint_steps(killed)) < 120
    subprocess.run([sys.executable, "-m", "trainer", *args, "--job-dir", killed], env=_env(),
                   cwd=REPO, check=True, capture_output=True, timeout=600)
    metrics = run_dir.read_json(run_dir.find_run(killed).file("metrics.json"))
    assert metrics["complete"] and metrics["steps"] == 120 and metrics["resumed_from_steps"]
    expected, resumed = _final_weights(whole, 120), _final_weights(killed, 120)
    assert expected.keys() == resumed.keys() and expected
    for name in expected:
        np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)
