"""Training windows cut on the device, from a split held in each replica's memory.

The streaming pipeline (trainer/data.py) cuts windows on the host and hands every
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
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from trainer import data
from trainer import record_spec as spec
from trainer.augment import augment_windows, noise_bank, shifted_ends
from trainer.config import TrainConfig

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

    def __call__(self, data_dir: str, manifest: dict, config: TrainConfig) -> HeldSplit:
        key = (data_dir, data.run_window(config, manifest), config.cycle_length)
        if key not in self._held:
            self._held[key] = load_split(data_dir, manifest, config)
        return self._held[key]


class DeviceWindows:
    """A HeldSplit placed on every replica's device, and the per-replica batches cut there.

    Create it outside any replica context; call `replica_batch` inside `strategy.run`.
    """

    def __init__(self, held: HeldSplit, manifest: dict, config: TrainConfig,
                 strategy: tf.distribute.Strategy):
        self.config = config
        self.window = data.run_window(config, manifest)
        self.per_replica_batch = config.global_batch_size // strategy.num_replicas_in_sync
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
