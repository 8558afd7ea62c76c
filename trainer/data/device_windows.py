"""Training windows cut on the device, from a split held in each replica's memory.

The streaming pipeline (trainer/data/datasets.py) cuts windows on the host and hands every
batch to the device: on a GPU that trains 100k+ windows/s, the host's few cores
cannot keep up, least of all with multi-second windows.  A split that fits a memory
budget per device is instead held on every replica's device once, as three tensors:
its rows' signals and labels, and the candidate window ends grouped by class.  Each
step then samples its ends there with stateless ops seeded by (seed, step, replica),
gathers the windows and augments them: the host hands over nothing but the step.

Same sampling law as the stream: each class is drawn with probability proportional
to (its candidate ends x its acceptance, data.acceptance_by_class), so `sampling`
balances the classes and `weights`/`none` keep the data's shares; within a class
every candidate end is equally likely.  The windows are cut and augmented by the
same functions (data.gather_windows, augment.shifted_ends, augment.augment_windows).
Because a batch is a function of (seed, step), a resumed run replays exactly the
batches an uninterrupted run would have drawn.

The validation split is held likewise, on the device that scores it (ValidWindows,
below): each epoch scores a fixed subsample of it, the exported epoch all of it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.model.augment import augment_windows, noise_bank, shifted_ends
from trainer.records import spec
from trainer.shared.distribution import replica_devices

log = logging.getLogger(__name__)

MIB = 1 << 20
# Bytes a held row takes (signals + label) and a candidate end takes (end + floor).
ROW_BYTES = spec.NUM_CHANNELS * 4 + 4
END_BYTES = 8 + 8


@dataclasses.dataclass(frozen=True)
class HeldSplit:
    """A split's segments concatenated, in host memory, ready to place on devices."""
    signals: np.ndarray        # [rows, channels] float32, the segments one after another
    labels: np.ndarray         # [rows] int32
    ends: np.ndarray           # [n] int64 candidate window ends (row indices), grouped by class
    floors: np.ndarray         # [n] int64 the earliest end of each candidate's segment
    ends_per_class: np.ndarray  # [classes] int64 how many of `ends` each class has

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.signals, self.labels, self.ends, self.floors))


def estimated_mib(manifest: dict, split: str, window: int) -> float:
    """Device memory a split would take when held (from the manifest, before reading):
    its rows plus each record's context rows, and one candidate per window."""
    info = manifest["splits"][split]
    rows = info["rows"] + info.get("records", 0) * (window - 1)
    ends = info.get("windows") or info["rows"]
    return (rows * ROW_BYTES + ends * END_BYTES) / MIB


def load_split(data_dir: str, manifest: dict, config: TrainConfig,
               split: str = "train") -> HeldSplit:
    """Reads every segment of `split` (in record order) into one HeldSplit."""
    window = data.run_window(config, manifest)
    segments = data.parse_segments(
        data.read_records(data.shard_paths(data_dir, manifest, split), config.cycle_length, None),
        (spec.SIGNALS, spec.LABELS, spec.CONTEXT_ROWS))
    signals, labels, ends, floors = [], [], [], []
    offset = 0
    for segment in segments.as_numpy_iterator():
        rows = len(segment[spec.LABELS])
        first = max(int(segment[spec.CONTEXT_ROWS]), window - 1)
        candidates = np.arange(first, rows, dtype=np.int64)
        signals.append(segment[spec.SIGNALS])
        labels.append(segment[spec.LABELS])
        ends.append(candidates + offset)
        floors.append(np.full(len(candidates), offset + window - 1, np.int64))
        offset += rows
    if not signals:
        raise data.DataError(f"{data_dir}: split {split!r} holds no segments")
    all_labels = np.concatenate(labels).astype(np.int32)
    all_ends, all_floors = np.concatenate(ends), np.concatenate(floors)
    end_labels = all_labels[all_ends]
    order = np.argsort(end_labels, kind="stable")  # grouped by class, row order within
    return HeldSplit(signals=np.concatenate(signals).astype(np.float32, copy=False),
                     labels=all_labels, ends=all_ends[order], floors=all_floors[order],
                     ends_per_class=np.bincount(end_labels, minlength=spec.NUM_CLASSES))


SplitLoader = Callable[[str, dict, TrainConfig], HeldSplit]  # load_split's signature


class HeldSplitCache:
    """load_split that keeps what it read, for a process that trains many times on the
    same data (a tuning search): every trial of a window length after the first takes
    the training split from host memory instead of reading and concatenating it again.
    One HeldSplit per (data, window, cycle_length), the things it depends on."""

    def __init__(self) -> None:
        self._held: dict[tuple, HeldSplit] = {}
        self._valid: dict[tuple, "HeldValidation"] = {}

    def __call__(self, data_dir: str, manifest: dict, config: TrainConfig) -> HeldSplit:
        key = (data_dir, data.run_window(config, manifest), config.cycle_length)
        if key not in self._held:
            self._held[key] = load_split(data_dir, manifest, config)
        return self._held[key]

    def valid(self, data_dir: str, manifest: dict, config: TrainConfig) -> "HeldValidation":
        """load_valid_split, kept likewise (fit_loop's `load_valid`)."""
        key = (data_dir, data.run_window(config, manifest), config.cycle_length)
        if key not in self._valid:
            self._valid[key] = load_valid_split(data_dir, manifest, config)
        return self._valid[key]


class DeviceWindows:
    """A HeldSplit placed on every replica's device, and the per-replica batches cut there.

    Create it outside any replica context; call `replica_batch` inside `strategy.run`.
    """

    def __init__(self, held: HeldSplit, manifest: dict, config: TrainConfig,
                 strategy: tf.distribute.Strategy):
        self.config = config
        self.window = data.run_window(config, manifest)
        self.per_replica_batch = config.global_batch_size // strategy.num_replicas_in_sync
        self.mib = held.nbytes / MIB  # per device
        counts = data.class_counts(manifest, "train")
        share = held.ends_per_class * data.acceptance_by_class(counts, config.balancing)
        if share.sum() <= 0:
            raise data.DataError("the training split has no window end of a class to train on")
        with np.errstate(divide="ignore"):
            self.class_logits = tf.constant(np.log(share / share.sum())[None, :], tf.float32)
        self.class_sizes = tf.constant(held.ends_per_class, tf.int64)
        self.class_starts = tf.constant(np.cumsum(held.ends_per_class) - held.ends_per_class,
                                        tf.int64)
        self.weight_by_class = tf.constant(data.loss_weight_by_class(counts, config.balancing))
        # Variables, so that under MirroredStrategy each replica's device holds a copy
        # (and a graph never embeds hundreds of MB as constants).  Never trained, never
        # checkpointed.
        with strategy.scope():
            self.signals = tf.Variable(held.signals, trainable=False, name="held_signals")
            self.labels = tf.Variable(held.labels, trainable=False, name="held_labels")
            self.ends = tf.Variable(held.ends, trainable=False, name="held_ends")
            self.floors = tf.Variable(held.floors, trainable=False, name="held_floors")
            self.noise = tf.Variable(noise_bank(config.seed, spec.NUM_CHANNELS,
                                                config.augment_noise),
                                     trainable=False, name="noise_bank")

    def replica_batch(self, step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(windows [b, window, C], labels [b], loss weights [b]) for this replica at `step`."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return self.batch(step_seed(self.config.seed, step, replica))

    def batch(self, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One batch from the stateless `seed` [2]: ends drawn by class, then cut and augmented."""
        class_seed, end_seed, shift_seed, augment_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4))
        size = self.per_replica_batch
        classes = tf.random.stateless_categorical(self.class_logits, size, class_seed)[0]
        within = tf.random.stateless_uniform([size], end_seed, dtype=tf.float64)
        class_size = tf.gather(self.class_sizes, classes)
        offset = tf.minimum(tf.cast(within * tf.cast(class_size, tf.float64), tf.int64),
                            class_size - 1)
        index = tf.gather(self.class_starts, classes) + offset
        ends = tf.gather(self.ends, index)
        labels = tf.gather(self.labels, ends)
        content_ends = shifted_ends(ends, tf.gather(self.floors, index),
                                    self.config.augment_shift, shift_seed)
        windows = data.gather_windows(self.signals, content_ends, self.window)
        return (augment_windows(windows, augment_seed, self.config, self.noise), labels,
                tf.gather(self.weight_by_class, labels))


def step_seed(seed: int, step: tf.Tensor, replica: tf.Tensor) -> tf.Tensor:
    """The stateless seed [2] of one replica's batch at one step."""
    return tf.stack([tf.cast(seed, tf.int64),
                     tf.cast(step, tf.int64) * 1024 + tf.cast(replica, tf.int64)])


def held_training_mib(manifest: dict, config: TrainConfig) -> float:
    """Device memory the training split will take per device: its estimate when
    device_windows_for holds it, 0 when it is streamed."""
    needed = estimated_mib(manifest, "train", data.run_window(config, manifest))
    return needed if needed <= config.device_data_mb else 0.0


def device_windows_for(data_dir: str, manifest: dict, config: TrainConfig,
                       strategy: tf.distribute.Strategy,
                       load: SplitLoader = load_split) -> Optional[DeviceWindows]:
    """DeviceWindows when the training split fits `config.device_data_mb` per device,
    else None (the streaming pipeline); logs which, and why.  `load` reads the split
    (a HeldSplitCache keeps it between runs)."""
    window = data.run_window(config, manifest)
    needed = estimated_mib(manifest, "train", window)
    if needed > config.device_data_mb:
        log.info("training windows streamed from the host: the training split needs ~%.0f MiB "
                 "per device, over --device-data-mb %d", needed, config.device_data_mb)
        return None
    held = load(data_dir, manifest, config)
    log.info("training windows cut on the device: the training split (%d rows, %d window "
             "ends) takes %.0f MiB per device, within --device-data-mb %d",
             len(held.labels), len(held.ends), held.nbytes / MIB, config.device_data_mb)
    return DeviceWindows(held, manifest, config, strategy)


# --- Validation held in memory -------------------------------------------------------
#
# The balanced validation split is small (a fifth of the rows, a few hundred MiB at
# most), but scoring it through tf.data means reading, decompressing and parsing every
# shard and gathering every window again after every epoch: at full scale that was
# 7-11 s of validation per ~0.7 s of training.  So a run reads the split once, holds its
# rows on the device that scores it, and cuts the windows there, by index: after each
# epoch only the fixed subsample (`valid_windows_per_class`, data.valid_subsample), and
# once at the end every window, for the exported epoch's metrics and its temperature.


@dataclasses.dataclass(frozen=True)
class HeldValidation:
    """The validation split's segments concatenated in host memory, and its windows."""
    signals: np.ndarray  # [rows, channels] float32, the segments one after another
    ends: np.ndarray     # [n] int64 each window's last row, in data.valid_dataset's order
    labels: np.ndarray   # [n] int32 each window's label

    @property
    def nbytes(self) -> int:
        return self.signals.nbytes + self.ends.nbytes + self.labels.nbytes


def load_valid_split(data_dir: str, manifest: dict, config: TrainConfig) -> HeldValidation:
    """Reads every validation segment (in data.valid_dataset's order) into one HeldValidation:
    its windows are the records' `window_ends`, the same windows in the same order."""
    window = data.run_window(config, manifest)
    segments = data.parse_segments(
        data.read_records(data.shard_paths(data_dir, manifest, "valid"), config.cycle_length,
                          None),
        (spec.SIGNALS, spec.LABELS, spec.WINDOW_ENDS))
    signals, ends, labels = [], [], []
    offset = 0
    for segment in segments.as_numpy_iterator():
        segment_ends = segment[spec.WINDOW_ENDS].astype(np.int64)
        if len(segment_ends) and segment_ends.min() < window - 1:
            raise data.DataError(f"{data_dir}: a validation window end ({segment_ends.min()}) "
                                 f"is too early for windows of {window} rows")
        signals.append(segment[spec.SIGNALS])
        ends.append(segment_ends + offset)
        labels.append(segment[spec.LABELS][segment_ends])
        offset += len(segment[spec.LABELS])
    if not signals or not sum(len(e) for e in ends):
        raise data.DataError("the validation split holds no windows")
    return HeldValidation(signals=np.concatenate(signals).astype(np.float32, copy=False),
                          ends=np.concatenate(ends),
                          labels=np.concatenate(labels).astype(np.int32))


ValidLoader = Callable[[str, dict, TrainConfig], HeldValidation]  # load_valid_split's


class ValidWindows:
    """The validation split held on one device (the first replica's, or the host's when
    it does not fit), its windows cut there by index and scored in batches.

    `subsample` are the indices of the windows scored after every epoch
    (data.valid_subsample: `config.valid_windows_per_class` per class, drawn with
    `config.seed`); `everything` all of them."""

    def __init__(self, held: HeldValidation, config: TrainConfig, window: int,
                 device: Optional[str] = None):
        self.window = window
        self.batch_size = config.valid_batch_size
        self.device = device
        self.ends = held.ends
        self.labels = held.labels
        self.everything = np.arange(len(held.labels))
        self.subsample = data.valid_subsample(held.labels, config.valid_windows_per_class,
                                              config.seed)
        # A variable, not a constant: a graph never embeds its hundreds of MB.  Created
        # outside any strategy's scope: one copy, where the windows are scored.
        with tf.device(device) if device else contextlib.nullcontext():
            self.signals = tf.Variable(held.signals, trainable=False, name="valid_signals")

    @property
    def is_subsample(self) -> bool:
        return len(self.subsample) < len(self.everything)

    def describe(self) -> str:
        """"2,000 of 24,515 windows per class (8,000 of 98,060)" or "all 98,060 windows"."""
        if not self.is_subsample:
            return f"all {len(self.everything):,} windows"
        per_class = np.bincount(self.labels[self.subsample], minlength=spec.NUM_CLASSES)
        of_class = np.bincount(self.labels, minlength=spec.NUM_CLASSES)
        return (f"{per_class.max():,} of {of_class.max():,} windows per class "
                f"({len(self.subsample):,} of {len(self.everything):,})")

    def scorer(self, model: keras.Model) -> "ValidScorer":
        """A ValidScorer of this split for `model` (trace it once per model, not per epoch)."""
        return ValidScorer(self, model)


# Most a subsample's cached front-end features may take (ValidScorer), and how many
# windows' features the rest of the model takes at a time (small inputs: larger
# batches than the windows' run twice as fast on a CPU).
FEATURE_CACHE_MIB = 256
HEAD_BATCH = 4096


class ValidScorer:
    """Scores validation windows with one model, in inference mode and in batches.

    `scorer(indices)` runs the whole model on those windows.  `scorer.subsample()` scores
    the epochs' subsample and, when the model starts with a front end without weights
    (the spectral one: FFT band powers and the slow channels' statistics, 85% of the
    scoring cost; fixed_front_end), runs that part once: it keeps the subsample's
    features (under FEATURE_CACHE_MIB) and every epoch runs only the rest of the model
    on them, which gives the same logits as the whole model."""

    def __init__(self, valid: ValidWindows, model: keras.Model):
        self.valid = valid
        window = valid.window

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def window_logits(ends):
            return model(data.gather_windows(valid.signals, ends, window), training=False)

        self._window_logits = window_logits
        self._model = model
        self._features: Optional[tf.Tensor] = None
        self._front = self._head = None
        self._split = False  # whether _front and _head were looked for (on first use)

    @property
    def caches_features(self) -> bool:
        """Whether subsample() runs the model's fixed front end only once."""
        if not self._split:
            self._split = True
            split = fixed_front_end(self._model)
            if split is not None:
                self._cache_front_end(*split)
        return self._head is not None

    def _cache_front_end(self, front: keras.Model, head: keras.Model) -> None:
        """Keeps the split when the subsample's features are small and smaller than its
        windows (the raw front end's pooled samples need not be)."""
        valid, window = self.valid, self.valid.window
        shape, dtype = front.output.shape[1:], front.output.dtype
        per_window = int(np.prod(shape)) * 4
        if (per_window * len(valid.subsample) > FEATURE_CACHE_MIB * MIB
                or per_window >= window * spec.NUM_CHANNELS * 4):
            return
        self._front = tf.function(
            lambda ends: front(data.gather_windows(valid.signals, ends, window)),
            input_signature=[tf.TensorSpec([None], tf.int64)])
        self._head = tf.function(lambda features: head(features, training=False),
                                 input_signature=[tf.TensorSpec([None, *shape], dtype)])

    def __call__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits [n, classes], labels [n]) of the windows `indices`, the whole model."""
        return self._batched(self._window_logits, tf.constant(self.valid.ends[indices])), \
            self.valid.labels[indices]

    def subsample(self) -> tuple[np.ndarray, np.ndarray]:
        """(logits, labels) of the epochs' subsample (valid.subsample)."""
        if not self.caches_features:
            return self(self.valid.subsample)
        if self._features is None:  # the first epoch: the front end, once
            ends = tf.constant(self.valid.ends[self.valid.subsample])
            size = self.valid.batch_size
            self._features = tf.concat([self._front(ends[start:start + size])
                                        for start in range(0, len(ends), size)], axis=0)
        return (self._batched(self._head, self._features,
                              max(HEAD_BATCH, self.valid.batch_size)),
                self.valid.labels[self.valid.subsample])

    def _batched(self, function, inputs: tf.Tensor, size: Optional[int] = None) -> np.ndarray:
        size = size or self.valid.batch_size
        logits = [function(inputs[start:start + size]).numpy()
                  for start in range(0, int(inputs.shape[0]), size)]
        if not logits:
            raise data.DataError("the validation split holds no windows")
        return np.concatenate(logits)


def fixed_front_end(model) -> Optional[tuple[keras.Model, keras.Model]]:
    """(front, head) with head(front(x)) == model(x), where `front` holds no variables (no
    weights, no random state: the same output every epoch) and `head` is as short as
    possible; None when the model has no such front (e.g. the learned filterbank) or is
    not a functional Keras model."""
    if not isinstance(model, keras.Model) or not hasattr(model, "input"):
        return None
    best = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.variables:
            continue
        try:
            cut = layer.output
            front = keras.Model(model.input, cut)
            if any(inner.variables for inner in front.layers):
                continue
            head = keras.Model(cut, model.outputs)
        except (ValueError, AttributeError, TypeError):
            continue  # another path joins the input to the output, or several outputs
        if best is None or len(head.layers) < len(best[1].layers):
            best = (front, head)
    return best


def valid_windows_for(data_dir: str, manifest: dict, config: TrainConfig,
                      strategy: tf.distribute.Strategy,
                      held_training_mib: float = 0.0,
                      load: Optional[ValidLoader] = None) -> ValidWindows:
    """The validation split held where it is scored: on the device that scores it (the
    first replica's) when it fits what `config.device_data_mb` leaves beside the training
    split (`held_training_mib`, 0 when that is streamed), else in host memory; logs which.
    `load` reads the split (load_valid_split, or a HeldSplitCache's `valid`)."""
    window = data.run_window(config, manifest)
    needed = estimated_mib(manifest, "valid", window)
    left = config.device_data_mb - held_training_mib
    devices = replica_devices(strategy)
    on_device = needed <= left
    device = (devices[0] if devices != ["default"] else None) if on_device else "/cpu:0"
    held = (load or load_valid_split)(data_dir, manifest, config)
    valid = ValidWindows(held, config, window, device)
    log.info("validation windows cut %s: the validation split (%d rows, %d windows) takes "
             "%.0f MiB%s; scored after each epoch: %s; the exported epoch: all",
             "on the device" if on_device else "on the host", len(held.signals),
             len(held.labels), held.nbytes / MIB,
             "" if on_device else f", over what --device-data-mb {config.device_data_mb} leaves",
             valid.describe())
    return valid
