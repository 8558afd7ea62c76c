"""tf.data input pipelines over segment records (see trainer.records.spec).

Windows are cut on the fly: a segment holds up to ~16k rows x 23 channels, and all
of its stride-1 windows would be 256 times larger.  For training, each pass over a
segment draws window *ends* (each candidate end is kept with a probability that
depends on its label, which balances the classes across the whole data set) and
gathers only those windows.  Validation uses the ends stored in the records
(`window_ends`, the balanced selection made by the writer); prediction uses ends
at a fixed stride.

Randomness comes from stateless ops fed by a seeded stream, and every stage keeps
its order, so a pipeline is deterministic for a seed.
"""
from __future__ import annotations

import contextlib
import json
import posixpath
import re
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.model.augment import augment_windows, noise_bank, shifted_ends
from trainer.records import spec
from trainer.shared.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE
SEGMENTS_PER_PARSE = 8  # records parsed together by one tf.io.parse_example call
WINDOWS_PER_GROUP = 8   # window ends shuffled together (see train_dataset)
_SHARD_NAME = re.compile(r"part-(\d+)-of-(\d+)" + re.escape(spec.SHARD_SUFFIX) + "$")


class DataError(UserError):
    """The data directory is missing, incomplete or inconsistent."""


def read_manifest(data_dir: str) -> dict:
    """Reads and checks `manifest.json` of a data directory (local or gs://)."""
    path = posixpath.join(data_dir, spec.MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path} not found: --data must be the --output directory of a "
                        "finished `python -m beam_preprocess` run")
    with tf.io.gfile.GFile(path) as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from e
    spec.check_manifest(manifest, source=path)
    return manifest


def manifest_window(manifest: dict) -> int:
    window = manifest.get("window")
    if not isinstance(window, int) or window < 1:
        raise DataError(f"manifest window {window!r} is not a positive integer")
    return window


def run_window(config: TrainConfig, manifest: dict) -> int:
    """Rows per window of a run: the config's, else the data's (its manifest)."""
    return config.window or manifest_window(manifest)


def resolve_window(config: TrainConfig, manifest: dict) -> TrainConfig:
    """The config with `window` set: the manifest's unless a shorter one was asked for.

    Longer windows than the writer's are refused: the records' context rows and
    validation ends only guarantee complete windows of the manifest's length.
    """
    written = manifest_window(manifest)
    if config.window is None:
        return TrainConfig.from_dict({**config.to_dict(), "window": written})
    if config.window > written:
        raise DataError(f"window {config.window} is longer than the data's window {written}")
    return config


def require_windows(data_dir: str, manifest: dict) -> None:
    """Refuses, before anything is built, data whose training or validation split holds
    no window of the data's window length (its manifest's counts).

    Sessions (or their contiguous runs) shorter than the window give a split no window:
    beam_preprocess counts them at its --window, and neither the balancing (which draws
    by those counts) nor the validation (its window ends are chosen at that length)
    could do with a shorter trainer --window, so the remedy is preprocessing again."""
    window = manifest_window(manifest)
    splits = manifest.get("splits", {})
    if "valid" not in splits:
        raise DataError(f"{data_dir} has no validation split: re-run beam_preprocess with "
                        "--valid-fraction above 0 or --holdout-crews")
    for split, name in (("train", "training"), ("valid", "validation")):
        info = splits.get(split) or {}
        windows = info.get("windows")
        if windows is None and "windows_per_class" in info:
            windows = sum(info["windows_per_class"].values())
        if windows is None or windows > 0:
            continue  # an older manifest without counts: train_dataset finds out
        records, rows = info.get("records", 0), info.get("rows", 0)
        held = (f"its {records} segments hold {rows / records:,.0f} rows on average"
                if records else "it holds no segment")
        raise DataError(
            f"{data_dir}: the {name} split holds no window of {window} rows ({held}): re-run "
            f"beam_preprocess with a smaller --window, or on more data (longer sessions); "
            "the trainer's --window cannot help: the data's windows are counted and chosen "
            "at the data's window")


def shard_paths(data_dir: str, manifest: dict, split: str) -> list[str]:
    """Paths of a split's shards; raises DataError naming any that are missing."""
    split_info = manifest.get("splits", {}).get(split)
    if not split_info or not split_info.get("shards"):
        raise DataError(f"{data_dir}: manifest lists no shards for split {split!r}")
    split_dir = posixpath.join(data_dir, posixpath.dirname(spec.shard_prefix(split)))
    paths = []
    for name in split_info["shards"]:
        paths.append(posixpath.join(data_dir, name) if "/" in name
                     else posixpath.join(split_dir, name))
    expected = _expected_shard_count(paths)
    if expected is not None and expected != len(paths):
        raise DataError(f"{data_dir}: split {split!r} lists {len(paths)} shards "
                        f"but their names say there are {expected}")
    missing = [p for p in paths if not tf.io.gfile.exists(p)]
    if missing:
        raise DataError(f"{data_dir}: {len(missing)} of {len(paths)} {split} shards missing: "
                        + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                        + "; copy them back or re-run beam_preprocess")
    return paths


@contextlib.contextmanager
def shards_read_whole(data_dir: str) -> Iterator[None]:
    """Turns TensorFlow's DataLossError from reading a shard (truncated, corrupt) into a
    DataError that names the shard: tf.data's own message names no file."""
    try:
        yield
    except tf.errors.DataLossError as err:
        bad = _first_unreadable_shard(data_dir)
        if bad is None:
            raise
        path, problem = bad
        raise DataError(f"{path} cannot be read ({problem}): the data directory is damaged; "
                        "copy the shard again or re-run beam_preprocess") from err


def _first_unreadable_shard(data_dir: str) -> Optional[tuple[str, str]]:
    """(path, TensorFlow's message) of the first shard of any split that does not read to
    its end; None if all do.  Only called after a read failed: it reads every shard."""
    manifest = read_manifest(data_dir)
    for split in manifest.get("splits", {}):
        for path in shard_paths(data_dir, manifest, split):
            try:
                for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"):
                    pass
            except tf.errors.DataLossError as err:  # TensorFlow's reason, not its op names
                reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", err.message.splitlines()[0])
                return path, reason
    return None


def _expected_shard_count(paths: list[str]) -> Optional[int]:
    counts = {int(m.group(2)) for m in map(_SHARD_NAME.search, paths) if m}
    if len(counts) > 1:
        raise DataError(f"shards name different totals {sorted(counts)}: {paths[:3]} ...")
    return counts.pop() if counts else None


def class_counts(manifest: dict, split: str = "train") -> np.ndarray:
    """Windows (or, if not recorded, rows) per class of a split, in CLASSES order."""
    info = manifest["splits"][split]
    per_class = info.get("windows_per_class") or info.get("rows_per_class")
    if not per_class:
        raise DataError(f"manifest split {split!r} has no windows_per_class or rows_per_class")
    counts = np.array([float(per_class.get(c, 0)) for c in spec.CLASSES])
    if not counts.sum():
        raise DataError(f"manifest split {split!r} holds no window of {manifest.get('window')} "
                        "rows: re-run beam_preprocess with a smaller --window, or on more data")
    return counts


def acceptance_by_class(counts: np.ndarray, balancing: str) -> np.ndarray:
    """Probability (before sampling_density) that a candidate window end is kept.

    Under `sampling` a class is kept in inverse proportion to its count, so every
    present class is drawn equally often; otherwise every end is equally likely.
    """
    present = counts > 0
    if balancing != "sampling":
        return present.astype(np.float32)
    accept = np.zeros_like(counts)
    accept[present] = counts[present].min() / counts[present]
    return accept.astype(np.float32)


def loss_weight_by_class(counts: np.ndarray, balancing: str) -> np.ndarray:
    """Per-example loss weight: inverse class frequency under `weights`, else 1."""
    present = counts > 0
    weights = present.astype(np.float32)
    if balancing == "weights":
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def training_prior(counts: np.ndarray, balancing: str) -> np.ndarray:
    """The class prior the model learns: uniform when balanced, the data's otherwise."""
    if balancing in ("sampling", "weights"):
        prior = (counts > 0).astype(np.float64)
    else:
        prior = counts.astype(np.float64)
    return prior / prior.sum()


def parse_segments(records: tf.data.Dataset, keys: tuple[str, ...]) -> tf.data.Dataset:
    """Serialized records -> dicts of decoded tensors for `keys` (batched parsing)."""
    feature_spec = {k: v for k, v in spec.tf_feature_spec().items() if k in keys}

    def decode(parsed: dict) -> dict:
        out = {k: parsed[k] for k in keys if k in (spec.NUM_ROWS, spec.CONTEXT_ROWS,
                                                   spec.CREW, spec.SEAT, spec.BLOCK,
                                                   spec.EXPERIMENT)}
        if spec.SIGNALS in keys:
            out[spec.SIGNALS] = tf.reshape(tf.io.decode_raw(parsed[spec.SIGNALS], tf.float32),
                                           [-1, spec.NUM_CHANNELS])
        if spec.LABELS in keys:
            out[spec.LABELS] = tf.cast(tf.io.decode_raw(parsed[spec.LABELS], tf.uint8), tf.int32)
        if spec.IDS in keys:
            out[spec.IDS] = tf.io.decode_raw(parsed[spec.IDS], tf.int64)
        if spec.TIME in keys:
            out[spec.TIME] = tf.io.decode_raw(parsed[spec.TIME], tf.float64)
        if spec.WINDOW_ENDS in keys:
            out[spec.WINDOW_ENDS] = parsed[spec.WINDOW_ENDS].values  # no padding
        return out

    return (records.batch(SEGMENTS_PER_PARSE)
            .map(lambda s: tf.io.parse_example(s, feature_spec), num_parallel_calls=AUTOTUNE)
            .unbatch()
            .map(decode, num_parallel_calls=AUTOTUNE))


def read_records(paths: list[str], cycle_length: int, shuffle_seed: Optional[int]) -> tf.data.Dataset:
    """Records of the shards, interleaved; shards shuffled and repeated when seeded."""
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_seed is not None:
        files = files.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True).repeat()
    return files.interleave(
        lambda p: tf.data.TFRecordDataset(p, compression_type="GZIP"),
        cycle_length=min(cycle_length, len(paths)), block_length=1,
        num_parallel_calls=AUTOTUNE, deterministic=True)


def gather_windows(signals: tf.Tensor, ends: tf.Tensor, window: int) -> tf.Tensor:
    """Windows [k, window, C] whose last rows are `ends` [k]."""
    offsets = tf.range(1 - window, 1, dtype=ends.dtype)
    return tf.gather(signals, ends[:, None] + offsets[None, :])


def first_window_end(context_rows: tf.Tensor, window: int) -> tf.Tensor:
    """Tensor version of Segment.first_window_end."""
    return tf.maximum(tf.cast(context_rows, tf.int64), window - 1)


def sample_window_ends(labels: tf.Tensor, first_end: tf.Tensor, keep_by_class: tf.Tensor,
                       seed: tf.Tensor) -> tf.Tensor:
    """Ends >= first_end, each kept with probability keep_by_class[label] (stateless).

    A segment shorter than a window (a short contiguous run) has no candidates.
    """
    num_rows = tf.shape(labels, out_type=tf.int64)[0]
    candidates = tf.range(tf.minimum(first_end, num_rows), num_rows)
    keep = tf.gather(keep_by_class, tf.gather(labels, candidates))
    draws = tf.random.stateless_uniform(tf.shape(candidates), seed=seed)
    return tf.boolean_mask(candidates, draws < keep)


def _seed_stream(seed: int, stream: int) -> tf.data.Dataset:
    """An endless, seeded stream of stateless-op seeds [2]; `stream` keeps uses apart."""
    return tf.data.Dataset.random(seed=seed * 3 + stream,
                                  rerandomize_each_iteration=False).batch(2)


def train_dataset(data_dir: str, manifest: dict, config: TrainConfig, batch_size: int,
                  seed: Optional[int] = None) -> tf.data.Dataset:
    """Endless (windows [b, w, C] float32, labels [b] int32, loss weights [b]) batches.

    `batch_size` is the global batch; `seed` defaults to config.seed (resume passes
    another so that a resumed run does not replay the data it has seen).
    """
    seed = config.seed if seed is None else seed
    window = run_window(config, manifest)
    counts = class_counts(manifest, "train")
    keep_by_class = tf.constant(
        config.sampling_density * acceptance_by_class(counts, config.balancing))
    weight_by_class = tf.constant(loss_weight_by_class(counts, config.balancing))

    segments = parse_segments(
        read_records(shard_paths(data_dir, manifest, "train"), config.cycle_length, seed),
        (spec.SIGNALS, spec.LABELS, spec.CONTEXT_ROWS))
    seeds = _seed_stream(seed, 0)

    def ends_of(segment: dict, pair_seed: tf.Tensor) -> dict:
        ends = sample_window_ends(segment[spec.LABELS],
                                  first_window_end(segment[spec.CONTEXT_ROWS], window),
                                  keep_by_class, pair_seed)
        return {spec.SIGNALS: segment[spec.SIGNALS], spec.LABELS: segment[spec.LABELS],
                "ends": tf.random.experimental.stateless_shuffle(ends, seed=pair_seed)}

    def groups_of(segment: dict) -> tf.data.Dataset:
        """The segment's window ends in small groups, each with the segment's rows."""
        return (tf.data.Dataset.from_tensor_slices(segment["ends"]).batch(WINDOWS_PER_GROUP)
                .map(lambda ends: (segment[spec.SIGNALS], segment[spec.LABELS], ends)))

    def cut(group: tuple, group_seed: tf.Tensor):
        signals, labels, ends = group
        window_labels = tf.gather(labels, ends)  # the label of the row a window is for
        content_ends = shifted_ends(ends, window - 1, config.augment_shift, group_seed)
        return (gather_windows(signals, content_ends, window), window_labels,
                tf.gather(weight_by_class, window_labels))

    bank = noise_bank(seed, spec.NUM_CHANNELS, config.augment_noise)

    def augment(batch: tuple, batch_seed: tf.Tensor):
        windows, labels, weights = batch
        return augment_windows(windows, batch_seed, config, bank), labels, weights

    # Consecutive windows of one segment are nearly the same sample, and a batch
    # drawn from a few segments (one class, one stretch of one session) teaches the
    # model that stretch.  So groups of window *ends* are shuffled across many
    # segments first (cheap: a group shares its segment's rows, nothing is copied
    # until the windows are cut), then the windows themselves.
    groups = (tf.data.Dataset.zip(segments, seeds)
              .map(ends_of, num_parallel_calls=AUTOTUNE, deterministic=True)
              .flat_map(groups_of)
              .shuffle(config.shuffle_groups, seed=seed))
    windows = (tf.data.Dataset.zip(groups, _seed_stream(seed, 1))
               .map(cut, num_parallel_calls=AUTOTUNE, deterministic=True)
               .unbatch()
               .shuffle(config.shuffle_windows, seed=seed)
               .batch(batch_size, drop_remainder=True))
    return (tf.data.Dataset.zip(windows, _seed_stream(seed, 2))
            .map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
            .prefetch(AUTOTUNE))


def valid_dataset(data_dir: str, manifest: dict, config: TrainConfig,
                  batch_size: Optional[int] = None) -> tf.data.Dataset:
    """The balanced validation windows (the records' window_ends), in a fixed order.

    Training validates from the split held in memory instead (device_windows.ValidWindows,
    the same windows in the same order); this pipeline streams them for other readers."""
    window = run_window(config, manifest)
    segments = parse_segments(
        read_records(shard_paths(data_dir, manifest, "valid"), config.cycle_length, None),
        (spec.SIGNALS, spec.LABELS, spec.WINDOW_ENDS, spec.CONTEXT_ROWS))

    def windows_of(segment: dict):
        ends = segment[spec.WINDOW_ENDS]
        tf.debugging.assert_greater_equal(
            ends, tf.cast(window - 1, tf.int64),
            message="validation window end too early for the window length")
        return gather_windows(segment[spec.SIGNALS], ends, window), tf.gather(segment[spec.LABELS], ends)

    return (segments.map(windows_of, num_parallel_calls=AUTOTUNE, deterministic=True)
            .unbatch()
            .batch(batch_size or config.valid_batch_size)
            .prefetch(AUTOTUNE))


def valid_subsample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices (ascending) of the validation windows scored after every epoch: of each
    class, `per_class` windows drawn without replacement (all of a class that has no
    more), or every window when `per_class` is 0.

    `labels` are the split's window labels in valid_dataset's order.  The draw depends
    only on (seed, class, that class's windows): the same windows every epoch and on
    every resume, and a smaller subsample is part of a larger one of the same seed."""
    labels = np.asarray(labels)
    if per_class == 0:
        return np.arange(len(labels))
    chosen = []
    for c in range(spec.NUM_CLASSES):
        of_class = np.flatnonzero(labels == c)
        rng = np.random.default_rng([seed, c, _SUBSAMPLE_STREAM])
        chosen.append(rng.permutation(of_class)[:per_class])
    return np.sort(np.concatenate(chosen))


_SUBSAMPLE_STREAM = 0x7661  # keeps valid_subsample's draws apart from other uses of a seed


def strided_ends(num_rows: tf.Tensor, context_rows: tf.Tensor, window: int,
                 stride: int) -> tf.Tensor:
    """Window ends every `stride` rows from the segment's first full window."""
    first = first_window_end(context_rows, window)
    return tf.range(first, tf.cast(num_rows, tf.int64), stride)


def strided_segments(paths: list[str], window: int, stride: int, cycle_length: int,
                     keys: tuple[str, ...],
                     keep: Optional[Callable[[dict], tf.Tensor]] = None) -> tf.data.Dataset:
    """Per segment: its `keys`, plus windows at a stride and their `ends`.

    Every segment gets at least one window: one shorter than a window (a short
    contiguous run) is padded at the front with copies of its first row, and one
    whose context leaves no stride end gets the window ending at its last row.
    `keep(segment)`, if given, selects segments (by crew, seat, experiment, block)
    before any window is cut.
    """
    wanted = tuple(set(keys) | {spec.SIGNALS, spec.NUM_ROWS, spec.CONTEXT_ROWS}
                   | ({spec.CREW, spec.SEAT, spec.EXPERIMENT, spec.BLOCK} if keep else set()))
    segments = parse_segments(read_records(paths, cycle_length, None), wanted)
    if keep is not None:
        segments = segments.filter(keep)

    def add_windows(segment: dict) -> dict:
        signals = segment[spec.SIGNALS]
        pad = tf.maximum(tf.cast(window, tf.int64) - segment[spec.NUM_ROWS], 0)
        signals = tf.concat([tf.repeat(signals[:1], pad, axis=0), signals], axis=0)
        num_rows = segment[spec.NUM_ROWS] + pad
        ends = strided_ends(num_rows, segment[spec.CONTEXT_ROWS] + pad, window, stride)
        ends = tf.cond(tf.size(ends) > 0, lambda: ends, lambda: tf.reshape(num_rows - 1, [1]))
        out = dict(segment)
        del out[spec.SIGNALS]
        out["windows"] = gather_windows(signals, ends, window)
        out["ends"] = ends - pad
        return out

    return segments.map(add_windows, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(2)
