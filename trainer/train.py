"""The training run: a custom loop under a tf.distribute strategy, with exact resume.

A custom loop (rather than `Model.fit`) because resuming must continue from the
step of the last checkpoint, not from the start of its epoch: the model, the
optimizer (whose `iterations` is the global step) are checkpointed every
`checkpoint_every_steps` steps with tf.train.CheckpointManager, and a resumed run
stops at the same total of `epochs x steps_per_epoch` steps.  The resumed input
pipeline is seeded with (seed, step), so it does not replay the windows it began with.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from trainer import data, plots, run_dir
from trainer.config import TrainConfig
from trainer.distribution import make_strategy, per_replica_batch_size, replica_devices
from trainer.metrics import classification_metrics, softmax
from trainer.model import build_model
from trainer.summaries import TensorBoardLog

log = logging.getLogger(__name__)


def validation_logits(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every window of a (windows, labels) dataset."""
    logits_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    logits, labels = [], []
    for x, y in dataset:
        logits.append(logits_fn(x).numpy())
        labels.append(y.numpy())
    if not logits:
        raise data.DataError("the validation split holds no windows")
    return np.concatenate(logits), np.concatenate(labels)


def _pipeline_seed(config: TrainConfig, start_step: int) -> int:
    return config.seed if start_step == 0 else config.seed * 1_000_003 + start_step


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                     strategy: tf.distribute.Strategy, global_batch_size: int):
    @tf.function
    def train_step(iterator):
        def replica_step(x, y, weight):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                per_window = keras.losses.sparse_categorical_crossentropy(
                    y, logits, from_logits=True) * weight
                loss = tf.nn.compute_average_loss(per_window, global_batch_size=global_batch_size)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        per_replica = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def _save_keras(model: keras.Model, path: str) -> None:
    """Model.save goes through a local file, so that gs:// paths work too."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "model.keras")
        model.save(local)
        tf.io.gfile.copy(local, path, overwrite=True)


def _earlier_attempts(paths: run_dir.RunPaths, step: int) -> tuple[list[dict], list[int]]:
    """Epoch records (up to the restored step) and resume steps of earlier attempts."""
    path = paths.file("metrics.json")
    if not tf.io.gfile.exists(path):
        return [], []
    earlier = run_dir.read_json(path)
    return ([e for e in earlier["epochs"] if e["step"] <= step],
            earlier.get("resumed_from_steps", []))


def train(config: TrainConfig, data_dir: str, job_dir: str) -> run_dir.RunPaths:
    """Trains (or resumes) a run; returns its paths.  See run_dir for the layout."""
    manifest = data.read_manifest(data_dir)
    config = data.resolve_window(config, manifest)
    strategy = make_strategy(config.devices)
    per_replica_batch_size(config.global_batch_size, strategy)  # validates divisibility
    counts = data.class_counts(manifest, "train")
    prior = data.training_prior(counts, config.balancing)
    paths, resumed = run_dir.open_run(job_dir, config, {
        "data_dir": data_dir,
        "data_fingerprint": run_dir.fingerprint(manifest),
        "replicas": strategy.num_replicas_in_sync,
        "devices": replica_devices(strategy),
        "training_prior": prior.tolist(),
    })
    log.info("run %s (%s) in %s, %d replicas", paths.run_id,
             "resumed" if resumed else "new", paths.run_dir, strategy.num_replicas_in_sync)

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config)
        optimizer = keras.optimizers.Adam(config.learning_rate)
        optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, paths.checkpoints, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start = int(optimizer.iterations.numpy())
    history, resumes = _earlier_attempts(paths, start)
    if resumed:
        resumes.append(start)
        log.info("resuming at step %d of %d from %s", start, config.total_steps,
                 manager.latest_checkpoint)

    dataset = data.train_dataset(data_dir, manifest, config, config.global_batch_size,
                                 seed=_pipeline_seed(config, start))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    valid = data.valid_dataset(data_dir, manifest, config)
    train_step = make_train_step(model, optimizer, strategy, config.global_batch_size)
    board = TensorBoardLog(paths.tensorboard)

    epoch_losses: list[float] = []
    last_time, last_step = time.perf_counter(), start
    for step in range(start + 1, config.total_steps + 1):
        loss = float(train_step(iterator))
        epoch_losses.append(loss)
        if step % config.summary_every_steps == 0:
            now = time.perf_counter()
            board.train_scalars(step, {
                "loss": loss,
                "windows_per_second": (step - last_step) * config.global_batch_size / (now - last_time),
                "learning_rate": float(optimizer.learning_rate.numpy()),
            })
            last_time, last_step = now, step
        if step % config.steps_per_epoch == 0:
            logits, labels = validation_logits(model, valid)
            metrics = classification_metrics(softmax(logits), labels)
            board.validation(step, metrics, logits)
            history.append({"epoch": step // config.steps_per_epoch, "step": step,
                            "train_loss": float(np.mean(epoch_losses)), "valid": metrics})
            epoch_losses = []
            _write_metrics(paths, config, history, prior, resumes, step, complete=False)
            log.info("epoch %d step %d: train loss %.4f, valid log loss %.4f (balanced %.4f)",
                     history[-1]["epoch"], step, history[-1]["train_loss"],
                     metrics["log_loss"], metrics["balanced_log_loss"])
        if step % config.checkpoint_every_steps == 0 or step % config.steps_per_epoch == 0:
            manager.save(checkpoint_number=step)
    board.flush()

    _save_keras(model, paths.keras_model)
    model.export(paths.saved_model, verbose=False)
    plots.write_run_plots(paths, history, model, data_dir, manifest, config)
    _write_metrics(paths, config, history, prior, resumes,
                   int(optimizer.iterations.numpy()), complete=True)
    run_dir.finish_run(job_dir, paths)
    return paths


def _write_metrics(paths: run_dir.RunPaths, config: TrainConfig, history: list[dict],
                   prior: np.ndarray, resumes: list[int], steps: int, complete: bool) -> None:
    run_dir.write_json(paths.file("metrics.json"), {
        "run_id": paths.run_id,
        "complete": complete,
        "steps": steps,
        "total_steps": config.total_steps,
        "training_prior": prior.tolist(),
        "resumed_from_steps": resumes,
        "final": history[-1]["valid"] if history else None,
        "epochs": history,
    })
