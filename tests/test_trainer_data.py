"""The trainer's input pipeline: windows, labels, balance, determinism, bad data."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.model.augment import noise_bank
from trainer.records import spec
from trainer_fixtures import FixtureSpec, write_fixture_data


NO_AUGMENTATION = dict(augment_gain=0.0, augment_shift=0, augment_channel_dropout=0.0,
                       augment_noise=0.0)


def _config(manifest, **overrides) -> TrainConfig:
    """The pipeline's config with window contents as stored (no augmentation) unless
    overridden."""
    return data.resolve_window(TrainConfig(**{**NO_AUGMENTATION, **overrides}), manifest)


def _take(dataset, batches):
    parts = [tuple(t.numpy() for t in batch) for batch in dataset.take(batches)]
    return tuple(np.concatenate(column) for column in zip(*parts))


@pytest.fixture(scope="module")
def index_data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("index_data"))
    write_fixture_data(out, FixtureSpec(signals="index", train_sessions=3, valid_sessions=2,
                                        rows_per_session=1500, segment_rows=300))
    return out


def test_train_windows_are_consecutive_rows_ending_on_their_label(index_data_dir):
    manifest = data.read_manifest(index_data_dir)
    config = _config(manifest)
    x, y, _ = _take(data.train_dataset(index_data_dir, manifest, config, 64), 30)
    assert x.shape == (64 * 30, 64, spec.NUM_CHANNELS)
    rows = x[:, :, 0]
    np.testing.assert_array_equal(np.diff(rows, axis=1), 1.0)  # one session, time order
    np.testing.assert_array_equal(x[:, -1, 1], y)              # label = last row's
    # No window needs a row before the session start (the first w-1 rows have none).
    assert rows[:, 0].min() >= 0


def test_batches_mix_windows_of_many_segments(index_data_dir):
    """With no window shuffle at all, a batch still spans many segments."""
    manifest = data.read_manifest(index_data_dir)

    def segments_per_batch(shuffle_groups: int) -> float:
        config = _config(manifest, shuffle_windows=1, shuffle_groups=shuffle_groups,
                         balancing="none", sampling_density=1.0)
        x, _, _ = _take(data.train_dataset(index_data_dir, manifest, config, 32), 8)
        last_rows = x[:, -1, 0].reshape(8, 32)  # row index in its session
        return np.mean([len(np.unique(batch // 300)) for batch in last_rows])

    assert segments_per_batch(1) <= 1.5      # one segment after the other
    # 4 groups of WINDOWS_PER_GROUP per batch, from the 3 sessions x 5 segments.
    assert segments_per_batch(256) >= 2.0


def test_validation_windows_are_the_records_window_ends(index_data_dir):
    manifest = data.read_manifest(index_data_dir)
    x, y = _take(data.valid_dataset(index_data_dir, manifest, _config(manifest)), 1000)
    np.testing.assert_array_equal(x[:, -1, 1], y)
    expected = manifest["splits"]["valid"]["windows_per_class"]
    assert np.bincount(y, minlength=4).tolist() == [expected[c] for c in spec.CLASSES]


def test_sampled_ends_skip_context_rows():
    labels = tf.constant(np.arange(100) % 4, tf.int32)
    ends = data.sample_window_ends(labels, tf.constant(30, tf.int64),
                                   tf.constant([1.0, 1.0, 1.0, 1.0]), tf.constant([1, 2], tf.int64))
    assert ends.numpy().tolist() == list(range(30, 100))  # keep-probability 1 keeps all
    none_of_b = data.sample_window_ends(labels, tf.constant(0, tf.int64),
                                        tf.constant([1.0, 0.0, 1.0, 1.0]), tf.constant([1, 2], tf.int64))
    assert 1 not in (np.arange(100) % 4)[none_of_b.numpy()]
    # A segment shorter than a window (Beam writes short contiguous runs) has no ends.
    short = data.sample_window_ends(labels[:4], tf.constant(255, tf.int64),
                                    tf.constant([1.0, 1.0, 1.0, 1.0]), tf.constant([1, 2], tf.int64))
    assert short.numpy().tolist() == []


def test_sampling_balances_skewed_classes(trainer_data_dir):
    manifest = data.read_manifest(trainer_data_dir)
    counts = data.class_counts(manifest)
    assert counts.max() / counts.min() > 3  # the fixture is skewed
    _, y, w = _take(data.train_dataset(trainer_data_dir, manifest,
                                       _config(manifest, balancing="sampling"), 128), 60)
    shares = np.bincount(y, minlength=4) / y.size
    np.testing.assert_allclose(shares, 0.25, atol=0.03)
    np.testing.assert_array_equal(w, 1.0)


def test_no_balancing_keeps_data_shares_and_weights_balance_the_loss(trainer_data_dir):
    manifest = data.read_manifest(trainer_data_dir)
    counts = data.class_counts(manifest)
    _, y, w = _take(data.train_dataset(trainer_data_dir, manifest,
                                       _config(manifest, balancing="weights"), 128), 60)
    np.testing.assert_allclose(np.bincount(y, minlength=4) / y.size, counts / counts.sum(),
                               atol=0.04)
    # Per class, total loss weight is about the same: the weighted loss is balanced.
    weight_per_class = np.bincount(y, weights=w, minlength=4) / w.sum()
    np.testing.assert_allclose(weight_per_class, 0.25, atol=0.04)
    np.testing.assert_allclose(data.training_prior(counts, "weights"), 0.25)
    np.testing.assert_allclose(data.training_prior(counts, "none"), counts / counts.sum())


def test_pipeline_is_deterministic_for_a_seed(trainer_data_dir):
    manifest = data.read_manifest(trainer_data_dir)
    config = _config(manifest, shuffle_windows=256)

    def first(seed):
        return _take(data.train_dataset(trainer_data_dir, manifest, config, 32, seed=seed), 3)

    a, b, c = first(7), first(7), first(8)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c[0])


def test_time_shift_moves_window_content_back_and_keeps_the_label(index_data_dir):
    manifest = data.read_manifest(index_data_dir)
    plain = _take(data.train_dataset(index_data_dir, manifest, _config(manifest), 64), 10)
    shifted = _take(data.train_dataset(index_data_dir, manifest,
                                       _config(manifest, augment_shift=8), 64), 10)
    np.testing.assert_array_equal(shifted[1], plain[1])  # the same windows' labels
    rows = shifted[0][:, :, 0]
    np.testing.assert_array_equal(np.diff(rows, axis=1), 1.0)  # still consecutive rows
    shift = plain[0][:, -1, 0] - rows[:, -1]
    assert shift.min() >= 0 and shift.max() == 8 and (shift == 0).mean() < 0.3
    assert rows[:, 0].min() >= 0  # never before the first full window


def test_gain_channel_dropout_and_noise_are_seeded_per_window_and_channel(trainer_data_dir):
    manifest = data.read_manifest(trainer_data_dir)

    def batches(seed=0, **augment):
        config = _config(manifest, **augment)
        return _take(data.train_dataset(trainer_data_dir, manifest, config, 32, seed=seed), 4)

    plain = batches()[0]
    gained = batches(augment_gain=0.5)[0]
    # One gain per window and channel, for all rows: gained = plain x gain.
    gain = (gained * plain).sum(axis=1) / (plain * plain).sum(axis=1)
    np.testing.assert_allclose(gained, plain * gain[:, None, :], rtol=1e-4, atol=1e-5)
    log_gain = np.log(gain)
    assert abs(log_gain.mean()) < 0.1 and 0.4 < log_gain.std() < 0.6

    dropped = batches(augment_channel_dropout=0.3)[0]
    zeroed = (dropped == 0).all(axis=1)  # [window, channel]
    assert 0.2 < zeroed.mean() < 0.4
    np.testing.assert_array_equal(dropped[~zeroed[:, None, :].repeat(plain.shape[1], 1)],
                                  plain[~zeroed[:, None, :].repeat(plain.shape[1], 1)])

    noisy = batches(augment_noise=0.1)[0]
    assert 0.09 < np.std(noisy - plain) < 0.11
    # Each window's noise is a run of rows of the run's noise bank (augment.noise_bank).
    bank = noise_bank(0, plain.shape[2], 0.1).numpy()
    for noise in (noisy - plain)[:8]:
        starts = np.flatnonzero(np.abs(bank[:, 0] - noise[0, 0]) < 1e-5)
        assert any(np.allclose(bank[s:s + len(noise)], noise, atol=1e-5) for s in starts)

    everything = dict(augment_gain=0.2, augment_shift=4, augment_channel_dropout=0.1,
                      augment_noise=0.05)
    np.testing.assert_array_equal(batches(7, **everything)[0], batches(7, **everything)[0])
    assert not np.array_equal(batches(7, **everything)[0], batches(8, **everything)[0])


def _copy_data(src: str, dst: str) -> None:
    tf.io.gfile.makedirs(dst)
    for root, _, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), src)
            tf.io.gfile.makedirs(os.path.dirname(os.path.join(dst, rel)))
            tf.io.gfile.copy(os.path.join(root, name), os.path.join(dst, rel))


def test_incompatible_schema_version_is_refused(trainer_data_dir, tmp_path):
    bad = str(tmp_path / "old")
    _copy_data(trainer_data_dir, bad)
    path = os.path.join(bad, spec.MANIFEST_NAME)
    with open(path) as f:
        manifest = json.load(f)
    manifest["schema_version"] = spec.SCHEMA_VERSION + 1
    with open(path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(spec.IncompatibleDataError, match=r"manifest.json: schema_version 2"):
        data.read_manifest(bad)


def test_missing_shard_and_missing_manifest_are_named(trainer_data_dir, tmp_path):
    bad = str(tmp_path / "partial")
    _copy_data(trainer_data_dir, bad)
    missing = os.path.join(bad, "train", "part-00001-of-00003.tfrecord.gz")
    os.remove(missing)
    manifest = data.read_manifest(bad)
    with pytest.raises(data.DataError, match="1 of 3 train shards missing: .*part-00001-of-00003"):
        data.train_dataset(bad, manifest, _config(manifest), 32)
    with pytest.raises(data.DataError, match="manifest.json not found"):
        data.read_manifest(str(tmp_path / "nowhere"))


def test_shard_names_must_agree_on_the_total(trainer_data_dir):
    manifest = json.loads(json.dumps(data.read_manifest(trainer_data_dir)))
    manifest["splits"]["train"]["shards"] = manifest["splits"]["train"]["shards"][:2]
    with pytest.raises(data.DataError, match="lists 2 shards but their names say there are 3"):
        data.shard_paths(trainer_data_dir, manifest, "train")


def test_window_longer_than_the_data_is_refused(trainer_data_dir):
    manifest = data.read_manifest(trainer_data_dir)
    with pytest.raises(data.DataError, match="longer than the data's window 64"):
        data.resolve_window(TrainConfig(window=128), manifest)
