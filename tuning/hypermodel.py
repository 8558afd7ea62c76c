"""LSTMHyperModel: the trainer's model and training loop, driven by keras-tuner.

`build` is trainer.model.network.build_model on the trial's config; `fit` is
trainer.training.loop.fit_loop with that config, so a trial trains exactly as
`python -m trainer train` would (same input pipeline, balancing, loss and
validation), and its minibatch size is the trial's `batch_size`.  Each trial
also leaves `pilotstate_trial.json` beside keras-tuner's own files (its config,
the logs of every epoch, wall time, which tuner ran it and how many times) and
TensorBoard logs, for `python -m tuning report`.

The objective, OBJECTIVE_NAME, is what `python -m trainer train` with the trial's
config would export had it stopped after this epoch: the best epoch so far by
the trainer's own rule (trainer.training.loop.best_epoch), at the temperature fitted on
that epoch's validation logits when temperature_scaling is on.  So the trial's
score (the objective's lowest value) and its best epoch are the exported model's
loss and epoch, and a trial stops early by the trainer's rule too
(trainer.training.loop.should_stop with the config's `patience`).  keras-tuner's
SaveBestEpoch keeps the weights of that epoch, which Hyperband continues from.

A trial whose loss becomes NaN or infinite fails (keras-tuner's FailedTrialError), as
the trainer would export nothing with its config: the search goes on with the next
trial, and its record says at which step ("diverged").
"""
from __future__ import annotations

import logging
import os
import posixpath
import time
from typing import Callable, Optional, Sequence

import keras
import keras_tuner as kt
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.data.device_windows import HeldSplitCache
from trainer.model.network import build_model
from trainer.runs import run_dir
from trainer.shared.errors import DivergedError
from trainer.shared.distribution import per_replica_batch_size
from trainer.training.loop import (EpochResult, best_epoch, fit_loop, make_optimizer,
                                   make_step_counter, should_stop)
from trainer.training.summaries import TensorBoardLog
from tuning.space import SearchSpace

log = logging.getLogger(__name__)

TRIAL_RECORD = "pilotstate_trial.json"
OBJECTIVE_NAME = "val_exported_balanced_log_loss"


def exported_log_loss(history: list[dict]) -> float:
    """The objective after the last epoch of `history` (epochs in trainer.training.loop's shape,
    with the temperature-scaled validation metrics as "calibrated")."""
    return best_epoch(history)["calibrated"]["balanced_log_loss"]


class _ObjectiveLogs(keras.callbacks.CallbackList):
    """Callbacks whose epoch-end logs also hold the objective.

    fit_loop builds an epoch's logs from that epoch alone, and the objective needs the
    trial's history: `objective()` reads it (fit_loop's on_epoch hook, which keeps the
    history, runs before the callbacks)."""

    def __init__(self, callbacks: list, model: keras.Model, objective: Callable[[], float]):
        super().__init__(callbacks, add_history=True, model=model)
        self._objective = objective

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        super().on_epoch_end(epoch, {**(logs or {}), OBJECTIVE_NAME: self._objective()})


class LSTMHyperModel(kt.HyperModel):
    def __init__(self, space: SearchSpace, base: TrainConfig, data_dir: str, manifest: dict,
                 strategy: tf.distribute.Strategy):
        super().__init__(name="pilotstate_lstm")
        for batch_size in space.batch_sizes:
            per_replica_batch_size(batch_size, strategy)  # every choice must split evenly
        data.require_windows(data_dir, manifest)  # else every trial would fail the same way
        self.space = space
        self.base = base
        self.data_dir = data_dir
        self.manifest = manifest
        self.strategy = strategy
        self.held_splits = HeldSplitCache()  # the training split is read once, not per trial

    def trial_config(self, hp: kt.HyperParameters) -> TrainConfig:
        return self.space.config(hp, self.base)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        config = self.trial_config(hp)
        keras.utils.set_random_seed(config.seed)
        return build_model(config)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *, epochs: int,
            initial_epoch: int = 0, callbacks: Sequence[keras.callbacks.Callback] = (),
            trial_dir: str, tensorboard_dir: str) -> keras.callbacks.History:
        """Trains epochs initial_epoch .. epochs-1 (Hyperband continues earlier trials)."""
        config = self.trial_config(hp)
        optimizer = make_optimizer(model, config, self.strategy)
        history: list[dict] = []  # this run's epochs, in trainer.training.loop's shape
        callback_list = _ObjectiveLogs(list(callbacks), model, lambda: exported_log_loss(history))
        board = TensorBoardLog(tensorboard_dir)
        record_path = posixpath.join(trial_dir, TRIAL_RECORD)
        attempts = (run_dir.read_json(record_path)["attempts"] + 1
                    if tf.io.gfile.exists(record_path) else 1)
        record = {"config": config.to_dict(), "initial_epoch": initial_epoch,
                  "epochs_asked": epochs, "epochs": [], "seconds": 0.0, "complete": False,
                  "tuner_id": os.environ.get("KERASTUNER_TUNER_ID", "tuner0"),
                  "attempts": attempts}
        started = time.perf_counter()

        def on_epoch(result: EpochResult) -> None:
            board.validation(result.step, result.metrics, result.logits)
            history.append({"epoch": result.epoch + 1, "valid": result.metrics,
                            "calibrated": result.calibrated})
            record["epochs"].append({"epoch": result.epoch, **result.keras_logs(),
                                     OBJECTIVE_NAME: exported_log_loss(history)})
            record["seconds"] = time.perf_counter() - started
            run_dir.write_json(record_path, record)
            if should_stop(history, config.patience):
                model.stop_training = True

        steps = config.steps_per_epoch
        step_counter = make_step_counter(self.strategy)
        step_counter.assign(initial_epoch * steps)
        try:
            fit_loop(model, optimizer, self.strategy, config, self.data_dir, self.manifest,
                     step_counter=step_counter, end_step=epochs * steps,
                     callbacks=callback_list, on_epoch=on_epoch,
                     load_held_split=self.held_splits)
        except DivergedError as err:
            board.flush()
            record.update(seconds=time.perf_counter() - started, diverged={
                "what": err.quantity, "value": str(err.value), "step": err.step,
                "epoch": err.epoch})
            run_dir.write_json(record_path, record)
            log.warning("trial %s (%s) fails: %s", posixpath.basename(trial_dir.rstrip("/")),
                        _shown_values(hp), err)
            raise kt.errors.FailedTrialError(f"{err}; the trial fails (learning rate "
                                             f"{config.learning_rate:g})") from None
        board.flush()
        record.update(seconds=time.perf_counter() - started, complete=True,
                      stopped_early=len(record["epochs"]) < epochs - initial_epoch)
        run_dir.write_json(record_path, record)
        log.info("trial %s (%s): %s %.4f after %d epochs, %.0f s",
                 posixpath.basename(trial_dir.rstrip("/")), _shown_values(hp), OBJECTIVE_NAME,
                 exported_log_loss(history), len(record["epochs"]), record["seconds"])
        return model.history


def _shown_values(hp: kt.HyperParameters) -> str:
    """A trial's hyperparameters in a log line: "units_0 16, learning_rate 0.0031"."""
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in hp.values.items())
