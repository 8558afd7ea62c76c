"""Training: one distributed loop, shared by a training run and a tuning trial.

`fit_loop` is a custom loop (rather than `Model.fit`) because a resumed run must
continue from the step of its last checkpoint, not from the start of its epoch.
It speaks Keras' callback protocol at epoch ends (flat `val_*` logs, including
the tuning objective `val_balanced_log_loss`, and `model.stop_training`), so
keras-tuner and EarlyStopping drive it as they would drive `Model.fit`.

Steps run `steps_per_execution` at a time inside one traced function (the host
waits for the device once per call, not once per step); a call never crosses an
epoch end or a checkpoint, so validation and checkpoints see exactly their step.
The batches come from the training split held on the devices when it fits
(trainer/data/device_windows.py), else from the streaming tf.data pipeline.

Validation is cut from the validation split held in memory where it is scored
(device_windows.ValidWindows, read once per run).  After every epoch it scores a
fixed, seeded subsample of `valid_windows_per_class` windows per class: the early
stopping signal and the best epoch's choice.  `train` scores the exported epoch once
on every window, which gives its metrics and its temperature (`calibrate`).

`train` is a whole run: the model, the optimizer and the global step counter are
checkpointed every `checkpoint_every_steps` steps with tf.train.CheckpointManager,
and a resumed run stops at the same total of `epochs x steps_per_epoch` steps.  A
loss or weights that become NaN or infinite stop a run (DivergedError) with its last
checkpoint good: an epoch's end is checkpointed only after its validation loss proved
finite, and no checkpoint holds non-finite weights; nothing is exported then.  On
the device path a batch is a function of (seed, step), so a resumed run trains on
exactly the batches an uninterrupted one would; the resumed streaming pipeline is
seeded with (seed, step), so it does not replay the windows it began with.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import posixpath
import tempfile
import time
from typing import Callable, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.data import device_windows as held_splits  # `device_windows` is a DeviceWindows here
from trainer.data.device_windows import (DeviceWindows, SplitLoader, ValidLoader, ValidWindows,
                                         device_windows_for, load_split)
from trainer.model.network import build_model
from trainer.prediction.prior import soft_confusion
from trainer.records.spec import CLASSES
from trainer.runs import plots, run_dir
from trainer.shared.errors import DivergedError
from trainer.shared.output_claim import OutputClaim
from trainer.shared.progress import Progress
from trainer.training.calibration import fit_temperature
from trainer.shared.distribution import (describe_devices, make_strategy, per_replica_batch_size,
                                           replica_devices)
from trainer.shared.metrics import classification_metrics, softmax
from trainer.training.summaries import TensorBoardLog

log = logging.getLogger(__name__)

BEST_CHECKPOINTS = "best"  # checkpoints/best/: the best epoch's weights


@dataclasses.dataclass(frozen=True)
class EpochResult:
    """What one epoch produced: its mean training loss and the validation outcome."""
    epoch: int          # 0-based, as Keras counts
    step: int           # global step at the end of the epoch
    train_loss: float
    metrics: dict       # trainer.shared.metrics.classification_metrics on the validation split
    logits: np.ndarray  # validation logits [windows, classes]
    temperature: float  # fitted on these logits (temperature_scaling), else 1.0
    calibrated: dict    # the validation metrics at that temperature
    train_seconds: float = 0.0  # wall time of the epoch's training steps
    valid_seconds: float = 0.0  # wall time of its validation (scoring, metrics, temperature)

    def keras_logs(self) -> dict[str, float]:
        """Flat `loss`/`val_*` logs for Keras callbacks and keras-tuner."""
        logs = {"loss": self.train_loss, "val_temperature": self.temperature,
                "val_calibrated_balanced_log_loss": self.calibrated["balanced_log_loss"]}
        for name in ("log_loss", "balanced_log_loss", "accuracy", "balanced_accuracy"):
            logs[f"val_{name}"] = self.metrics[name]
        for name in CLASSES:
            per = self.metrics["per_class"][name]
            if per["count"]:
                logs[f"val_log_loss_{name}"] = per["log_loss"]
                logs[f"val_accuracy_{name}"] = per["accuracy"]
        return logs


def validation_logits(logits_fn, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every window of a (windows, labels) dataset."""
    logits, labels = [], []
    for x, y in dataset:
        logits.append(logits_fn(x).numpy())
        labels.append(y.numpy())
    if not logits:
        raise data.DataError("the validation split holds no windows")
    return np.concatenate(logits), np.concatenate(labels)


def temperature_scaled(logits: np.ndarray, labels: np.ndarray,
                       temperature_scaling: bool) -> tuple[float, dict]:
    """The temperature fitted on validation logits (1.0 when temperature scaling is off)
    and the validation metrics at that temperature."""
    temperature = fit_temperature(logits, labels) if temperature_scaling else 1.0
    return temperature, classification_metrics(softmax(logits / temperature), labels)


def make_optimizer(model: keras.Model, config: TrainConfig,
                   strategy: tf.distribute.Strategy) -> keras.optimizers.Optimizer:
    """AdamW (Adam when weight_decay is 0), built under the strategy so that its slots
    are mirrored like the weights; wrapped in dynamic loss scaling for fp16."""
    with strategy.scope():
        if config.weight_decay > 0:
            optimizer = keras.optimizers.AdamW(config.learning_rate,
                                               weight_decay=config.weight_decay)
        else:
            optimizer = keras.optimizers.Adam(config.learning_rate)
        if config.precision == "fp16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return optimizer


def make_step_counter(strategy: tf.distribute.Strategy) -> tf.Variable:
    """The global step: steps trained so far (checkpointed with the model).  Not the
    optimizer's `iterations`, which fp16 loss scaling leaves alone on a skipped step."""
    with strategy.scope():
        return tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")


def make_train_steps(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                     strategy: tf.distribute.Strategy, config: TrainConfig,
                     step_counter: tf.Variable,
                     device_windows: Optional[DeviceWindows] = None):
    """`train_steps(iterator, n)`: n training steps in one traced call; returns their
    losses [n] and advances `step_counter` by n.

    Batches (of config.global_batch_size windows over all replicas) come from
    `device_windows` (cut on each replica's device for the step) or, when it is None,
    from `iterator` (a distributed dataset iterator).  The loss is the cross-entropy
    against labels smoothed by config.label_smoothing, times each window's weight."""
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def replica_step(x, y, weight):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            per_window = keras.losses.categorical_crossentropy(
                tf.one_hot(y, len(CLASSES)), logits, from_logits=True,
                label_smoothing=config.label_smoothing) * weight
            loss = tf.nn.compute_average_loss(per_window,
                                              global_batch_size=config.global_batch_size)
            # fp16: the gradient of the scaled loss (scaled inside the tape); the
            # optimizer unscales it, and skips the step if it overflowed.
            target = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(target, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def replica_step_on_device(step):
        return replica_step(*device_windows.replica_batch(step))

    @tf.function
    def train_steps(iterator, n):
        losses = tf.TensorArray(tf.float32, size=n)
        for i in tf.range(n):
            if device_windows is None:
                per_replica = strategy.run(replica_step, args=next(iterator))
            else:
                per_replica = strategy.run(replica_step_on_device, args=(step_counter + 1,))
            losses = losses.write(i, strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                                                     axis=None))
            step_counter.assign_add(1)
        return losses.stack()

    return train_steps


def random_state(model: keras.Model) -> list:
    """The state of the model's random generators (dropout): Keras keeps it in
    `variables` but not in `weights`, and a checkpoint of the model alone leaves it out,
    so a resumed run would draw other dropout masks than an uninterrupted one."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


@contextlib.contextmanager
def random_state_kept(model: keras.Model) -> Iterator[None]:
    """Runs the block with the model's random state put back afterwards: Keras' LSTM
    draws from its dropout generator even in inference, so without this, validation
    would change the training's dropout masks (and a run resumed from a checkpoint
    taken before a validation would train on other masks than an uninterrupted one)."""
    state = [(v, v.numpy()) for v in random_state(model)]
    yield
    for variable, value in state:
        variable.assign(value)


def _pipeline_seed(config: TrainConfig, start_step: int) -> int:
    return config.seed if start_step == 0 else config.seed * 1_000_003 + start_step


def steps_until_sync(step: int, end_step: int, config: TrainConfig) -> int:
    """How many steps the next traced call runs from `step`: at most
    steps_per_execution, and never past an epoch end, a checkpoint or `end_step`."""
    boundaries = [end_step]
    for every in (config.steps_per_epoch, config.checkpoint_every_steps):
        boundaries.append((step // every + 1) * every)
    return min(config.steps_per_execution, min(boundaries) - step)


def fit_loop(model: keras.Model, optimizer: keras.optimizers.Optimizer,
             strategy: tf.distribute.Strategy, config: TrainConfig, data_dir: str,
             manifest: dict, *, step_counter: tf.Variable, end_step: int,
             callbacks: keras.callbacks.CallbackList,
             on_step: Optional[Callable[[int, float], None]] = None,
             on_epoch: Optional[Callable[[EpochResult], None]] = None,
             load_held_split: SplitLoader = load_split,
             valid: Optional[ValidWindows] = None,
             load_valid: Optional[ValidLoader] = None,
             calibrate_epochs: bool = True) -> None:
    """Trains from `step_counter`'s step to end_step, validating at every epoch end.

    An epoch's validation scores `valid.subsample` (the fixed, seeded subsample of
    `config.valid_windows_per_class` windows per class, or the whole split), held in
    memory where it is scored: `valid`, else read here with `load_valid` (default
    device_windows.load_valid_split; tuning passes its HeldSplitCache's `valid`).
    `calibrate_epochs` False skips each epoch's temperature (its result then has
    temperature 1.0 and `calibrated` = `metrics`): `train` fits one for the exported
    epoch only, on every window.

    `on_step(step, loss)` (called for every step, after the traced call that ran it)
    and `on_epoch(result)` see everything (the run's own records); `callbacks` get
    Keras' epoch protocol with flat logs.  Training stops early when a callback sets
    `model.stop_training`.  `load_held_split` reads the training split when it is held
    on the devices (tuning passes a HeldSplitCache).

    A training loss that is NaN or infinite (the host reads every step's loss at each
    sync anyway, so checking them costs nothing) or a validation loss that is raises
    trainer.shared.errors.DivergedError naming its step, before `on_step` or `on_epoch` see it.
    """
    per_replica_batch_size(config.global_batch_size, strategy)  # validates divisibility
    start_step = int(step_counter.numpy())
    device_windows = device_windows_for(data_dir, manifest, config, strategy, load_held_split)
    iterator = None
    if device_windows is None:
        dataset = data.train_dataset(data_dir, manifest, config, config.global_batch_size,
                                     seed=_pipeline_seed(config, start_step))
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
    if valid is None:
        valid = held_splits.valid_windows_for(
            data_dir, manifest, config, strategy,
            held_training_mib=device_windows.mib if device_windows else 0.0, load=load_valid)
    train_steps = make_train_steps(model, optimizer, strategy, config, step_counter,
                                   device_windows)
    scorer = valid.scorer(model)  # traced once, not once per epoch
    steps_per_epoch = config.steps_per_epoch
    train_seconds = 0.0

    model.stop_training = False
    callbacks.on_train_begin()
    progress = Progress("training", (end_step - start_step) * config.global_batch_size)
    epoch_losses: list[float] = []
    step = start_step
    try:
        while step < end_step:
            if step % steps_per_epoch == 0 or step == start_step:
                callbacks.on_epoch_begin(step // steps_per_epoch)
            started = time.perf_counter()
            losses = train_steps(iterator, tf.constant(steps_until_sync(step, end_step, config)))
            losses = losses.numpy()  # the host waits for the device here, once per call
            train_seconds += time.perf_counter() - started
            progress.advance(len(losses) * config.global_batch_size)
            bad = ~np.isfinite(losses)  # checked here, where the host has every step's loss
            if bad.any():
                first = int(np.argmax(bad))
                raise DivergedError("the training loss", losses[first], step + first + 1,
                                    (step + first) // steps_per_epoch + 1)
            for loss in losses.tolist():
                step += 1
                epoch_losses.append(loss)
                if on_step:
                    on_step(step, loss)
            epoch = (step - 1) // steps_per_epoch
            if step % steps_per_epoch == 0:
                started = time.perf_counter()
                with random_state_kept(model):
                    logits, labels = scorer.subsample()
                metrics = classification_metrics(softmax(logits), labels)
                if not (np.isfinite(logits).all() and np.isfinite(metrics["log_loss"])):
                    loss = metrics["log_loss"]
                    raise DivergedError("the validation loss", loss if not np.isfinite(loss)
                                        else np.nan, step, epoch + 1)
                temperature, calibrated = temperature_scaled(
                    logits, labels, config.temperature_scaling and calibrate_epochs)
                result = EpochResult(epoch=epoch, step=step,
                                     train_loss=float(np.mean(epoch_losses)), metrics=metrics,
                                     logits=logits, temperature=temperature,
                                     calibrated=calibrated, train_seconds=train_seconds,
                                     valid_seconds=time.perf_counter() - started)
                epoch_losses, train_seconds = [], 0.0
                progress.clear()
                if on_epoch:
                    on_epoch(result)
                callbacks.on_epoch_end(epoch, result.keras_logs())
                if model.stop_training:
                    log.info("stopped early after epoch %d", epoch + 1)
                    break
    except DivergedError:  # a loss or the weights became NaN or infinite
        progress.clear()  # the error's line takes the progress line's place
        raise
    progress.close()
    callbacks.on_train_end()


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


def train(config: TrainConfig, data_dir: str, job_dir: str,
          claim: Optional[OutputClaim] = None) -> run_dir.RunPaths:
    """Trains (or resumes) a run; returns its paths.  See run_dir for the layout.

    With `claim` (the job directory's, trainer/shared/output_claim.py), every checkpoint, the
    export and LATEST are written only after the claim is confirmed to be this job's."""
    confirm = claim.confirm if claim is not None else (lambda step: None)
    run_started = time.perf_counter()
    manifest = data.read_manifest(data_dir)
    config = data.resolve_window(config, manifest)
    data.require_windows(data_dir, manifest)  # sessions shorter than the window: say so now
    strategy = make_strategy(config.devices)
    per_replica_batch_size(config.global_batch_size, strategy)  # fail before creating the run
    counts = data.class_counts(manifest, "train")
    prior = data.training_prior(counts, config.balancing)
    paths, resumed = run_dir.open_run(job_dir, config, {
        "data_dir": data_dir,
        "data_fingerprint": run_dir.fingerprint(manifest),
        "replicas": strategy.num_replicas_in_sync,
        "devices": replica_devices(strategy),
        "training_prior": prior.tolist(),
        "train_rows_per_class": manifest["splits"]["train"].get("rows_per_class"),
    })
    log.info("run %s (%s) in %s, training on %s", paths.run_id,
             "resumed" if resumed else "new", paths.run_dir, describe_devices(strategy))

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config)
    optimizer = make_optimizer(model, config, strategy)
    step_counter = make_step_counter(strategy)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_counter,
                                     random_state=random_state(model))
    manager = tf.train.CheckpointManager(checkpoint, paths.checkpoints, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start = int(step_counter.numpy())
    history, resumes = _earlier_attempts(paths, start)
    earlier = list(history)
    if resumed:
        resumes.append(start)
        log.info("resuming at step %d of %d from %s", start, config.total_steps,
                 manager.latest_checkpoint)

    started = time.perf_counter()
    valid = held_splits.valid_windows_for(data_dir, manifest, config, strategy,
                                          held_splits.held_training_mib(manifest, config))
    seconds = {"valid_load": time.perf_counter() - started, "train_steps": 0.0,
               "valid_epochs": 0.0}
    board = TensorBoardLog(paths.tensorboard)
    board.describe_validation(valid.describe())
    clock = {"time": time.perf_counter(), "step": start}

    def on_step(step: int, loss: float) -> None:
        if step % config.summary_every_steps == 0:
            now = time.perf_counter()
            board.train_scalars(step, {
                "loss": loss,
                "windows_per_second": ((step - clock["step"]) * config.global_batch_size
                                       / (now - clock["time"])),
                "learning_rate": float(optimizer.learning_rate.numpy()),
            })
            clock.update(time=now, step=step)
        # An epoch's end is checkpointed by on_epoch, once its validation loss is finite.
        if step % config.checkpoint_every_steps == 0 and step % config.steps_per_epoch != 0:
            save_checkpoint(step)

    def save_checkpoint(step: int) -> None:
        """A checkpoint of finite weights only: the update of a step whose loss was finite
        can still make them NaN, and a resume would restore them."""
        value = first_non_finite(model.weights)
        if value is not None:
            raise DivergedError("the model's weights", value, step,
                                (step - 1) // config.steps_per_epoch + 1)
        confirm(f"saving the checkpoint of step {step}")
        manager.save(checkpoint_number=step)

    # The best epoch's weights are kept in a checkpoint of their own, so that the
    # exported model is the best epoch even after a resume.
    best_weights = tf.train.Checkpoint(model=model)
    best_manager = tf.train.CheckpointManager(
        best_weights, posixpath.join(paths.checkpoints, BEST_CHECKPOINTS), max_to_keep=1)

    def on_epoch(result: EpochResult) -> None:
        save_checkpoint(result.step)
        board.validation(result.step, result.metrics, result.logits)
        seconds["train_steps"] += result.train_seconds
        seconds["valid_epochs"] += result.valid_seconds
        history.append({"epoch": result.epoch + 1, "step": result.step,
                        "train_loss": result.train_loss, "valid": result.metrics,
                        "seconds": {"train": round(result.train_seconds, 3),
                                    "valid": round(result.valid_seconds, 3)}})
        if best_epoch(history) is history[-1]:
            confirm(f"saving the best epoch's checkpoint (step {result.step})")
            best_manager.save(checkpoint_number=result.step)
        _write_metrics(paths, config, history, prior, resumes, result.step, complete=False,
                       valid=valid)
        log.info("epoch %d step %d: %s", result.epoch + 1, result.step, epoch_summary(result))
        if should_stop(history, config.patience):
            log.info("no better balanced validation log loss for %d epochs: stopping",
                     config.patience)
            model.stop_training = True

    try:
        fit_loop(model, optimizer, strategy, config, data_dir, manifest,
                 step_counter=step_counter, end_step=config.total_steps,
                 callbacks=keras.callbacks.CallbackList([], model=model),
                 on_step=on_step, on_epoch=on_epoch, valid=valid, calibrate_epochs=False)
    except DivergedError as err:
        board.flush()
        raise _diverged_run(err, paths, manager, config) from None
    board.flush()

    # A copy: the epoch's record in `history` keeps the metrics it was chosen by.
    best = dict(best_epoch(history))
    best_weights.restore(best_manager.latest_checkpoint).expect_partial()
    started = time.perf_counter()
    whole, best["temperature"], best["calibrated"], confusion = calibrate(model, config, valid)
    seconds["valid_exported"] = time.perf_counter() - started
    if valid.is_subsample:
        best["valid_subsample"] = best["valid"]
    best["valid"] = whole
    board.exported(best["step"], whole, best["calibrated"], best["temperature"])
    log.info("exporting epoch %d (balanced validation log loss %.4f on all %s windows; %.4f "
             "at temperature %.3f)", best["epoch"], whole["balanced_log_loss"],
             f"{whole['count']:,}", best["calibrated"]["balanced_log_loss"], best["temperature"])
    if best["calibrated"]["balanced_log_loss"] >= np.log(len(CLASSES)):
        log.warning("the exported model is no better than chance on the balanced validation "
                    "split (%.3f >= ln %d): its predictions carry no information",
                    best["calibrated"]["balanced_log_loss"], len(CLASSES))
    confirm(f"exporting the model to {paths.model}")
    _save_keras(model, paths.keras_model)
    model.export(paths.saved_model, verbose=False)
    plots.write_run_plots(paths, history, best, model, data_dir, manifest, config)
    seconds["run"] = time.perf_counter() - run_started
    seconds["valid"] = seconds["valid_load"] + seconds["valid_epochs"] + seconds["valid_exported"]
    log.info("%s", time_summary(seconds, len(history) - len(earlier), valid))
    _write_metrics(paths, config, history, prior, resumes,
                   int(step_counter.numpy()), complete=True, best=best, valid=valid,
                   seconds={k: round(v, 3) for k, v in seconds.items()})
    run_dir.update_json(paths.file("run.json"), {
        "exported_epoch": best["epoch"], "exported_step": best["step"],
        "temperature": best["temperature"], "valid_soft_confusion": confusion.tolist()})
    confirm(f"updating {run_dir.LATEST}")
    run_dir.finish_run(job_dir, paths)
    return paths


def first_non_finite(variables: list) -> Optional[float]:
    """The first NaN or infinite value among the variables' floats, None if all are
    finite (one reduction per variable on its device; a copy only of a bad one)."""
    for variable in variables:
        if (tf.as_dtype(variable.dtype).is_floating
                and not bool(tf.reduce_all(tf.math.is_finite(variable)))):
            values = variable.numpy()
            return float(values[~np.isfinite(values)].flat[0])
    return None


def _diverged_run(err: DivergedError, paths: run_dir.RunPaths,
                  manager: tf.train.CheckpointManager, config: TrainConfig) -> DivergedError:
    """The one-line error of a run stopped by `err`: what it keeps (the last checkpoint,
    all of whose steps had finite losses and weights) and what to do.  Nothing is
    exported, LATEST is left alone, and IN_PROGRESS still names the run (run.json
    records the step)."""
    latest = manager.latest_checkpoint
    kept = (f"its last good checkpoint (step {latest.rsplit('-', 1)[1]}) is kept in "
            f"{paths.checkpoints}" if latest else "no checkpoint was written before it")
    run_dir.update_json(paths.file("run.json"), {"diverged": {
        "what": err.quantity, "value": str(err.value), "step": err.step, "epoch": err.epoch,
        "last_checkpoint": latest}})
    return err.with_consequence(
        f"the run stops: {kept} and nothing is exported; lower --learning-rate "
        f"({config.learning_rate:g} now), or look for non-finite values in the data")


def epoch_summary(result: EpochResult) -> str:
    """The epoch's losses in words: "train loss 0.4321, valid log loss 0.5432 (A 0.312,
    B 0.921, C 0.403, D 0.550)".  The validation windows are balanced (the same number per
    class), so the log loss is also the balanced one: one number, then each class's.  (Its
    times are in metrics.json, and the run's in its last line, `time_summary`.)"""
    per_class = result.metrics["per_class"]
    classes = ", ".join(f"{c} {per_class[c]['log_loss']:.3f}" for c in CLASSES
                        if per_class[c]["count"])
    return (f"train loss {result.train_loss:.4f}, valid log loss "
            f"{result.metrics['balanced_log_loss']:.4f} ({classes})")


def best_epoch(history: list[dict]) -> dict:
    """The epoch record with the lowest balanced validation log loss (earliest on ties)."""
    return min(history, key=lambda e: e["valid"]["balanced_log_loss"])


def should_stop(history: list[dict], patience: int) -> bool:
    """True when the last `patience` epochs brought no better balanced validation loss."""
    return patience > 0 and history[-1]["epoch"] - best_epoch(history)["epoch"] >= patience


def calibrate(model: keras.Model, config: TrainConfig,
              valid: ValidWindows) -> tuple[dict, float, dict, np.ndarray]:
    """On every window of the validation split (not only the epochs' subsample): the
    model's metrics, the temperature fitted there (1.0 when temperature scaling is off),
    the metrics at that temperature, and the soft confusion matrix that `predict --prior
    bbse` needs.

    Computed afresh from the restored weights rather than kept from their epoch: the
    epochs score a subsample, after a resume that epoch's logits are gone, and it checks
    what is exported."""
    with random_state_kept(model):
        logits, labels = valid.scorer(model)(valid.everything)
    metrics = classification_metrics(softmax(logits), labels)
    temperature, calibrated = temperature_scaled(logits, labels, config.temperature_scaling)
    return (metrics, temperature, calibrated,
            soft_confusion(softmax(logits / temperature), labels))


def time_summary(seconds: dict, epochs: int, valid: ValidWindows) -> str:
    """Where the run's wall time went, in words: "validation took 15 s of the run's 66 s
    (23%): 49 epochs of 8,000 windows 4.9 s, the exported epoch on all 98,060 windows
    9.0 s, reading the split 1.3 s; training steps 40 s"."""
    run = seconds["run"]
    return (f"validation took {seconds['valid']:.0f} s of the run's {run:.0f} s "
            f"({100 * seconds['valid'] / run:.0f}%): {epochs} epochs of "
            f"{len(valid.subsample):,} windows {seconds['valid_epochs']:.1f} s, the exported "
            f"epoch on all {len(valid.everything):,} windows {seconds['valid_exported']:.1f} s, "
            f"reading the split {seconds['valid_load']:.1f} s; training steps "
            f"{seconds['train_steps']:.0f} s")


def _write_metrics(paths: run_dir.RunPaths, config: TrainConfig, history: list[dict],
                   prior: np.ndarray, resumes: list[int], steps: int, complete: bool,
                   best: Optional[dict] = None, valid: Optional[ValidWindows] = None,
                   seconds: Optional[dict] = None) -> None:
    """metrics.json: every epoch (its validation on the epochs' windows, `valid_windows`),
    the last, and (when complete) the exported best one with its metrics on the whole
    validation split (`valid`; `valid_subsample`: those it was chosen by), its temperature
    and calibrated metrics there, and where the run's wall time went (`seconds`)."""
    run_dir.write_json(paths.file("metrics.json"), {
        "best": best,
        "valid_windows": None if valid is None else valid_windows_record(valid, config),
        "seconds": seconds,
        "run_id": paths.run_id,
        "complete": complete,
        "steps": steps,
        "total_steps": config.total_steps,
        "training_prior": prior.tolist(),
        "resumed_from_steps": resumes,
        "final": history[-1]["valid"] if history else None,
        "epochs": history,
    })


def valid_windows_record(valid: ValidWindows, config: TrainConfig) -> dict:
    """metrics.json's `valid_windows`: which validation windows the epochs were scored on."""
    return {"epochs": "subsample" if valid.is_subsample else "all",
            "per_class": config.valid_windows_per_class or None, "seed": config.seed,
            "windows": len(valid.subsample), "of": len(valid.everything)}
