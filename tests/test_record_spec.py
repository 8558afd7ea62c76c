"""The record spec: what the writer encodes, both readers decode identically."""
import numpy as np
import pytest
import tensorflow as tf

from trainer.records import spec


def _segment(with_labels: bool) -> spec.Segment:
    rng = np.random.default_rng(0)
    n = 300
    return spec.Segment(
        crew=13, seat=1, experiment="DA" if with_labels else "LOFT", block=4,
        context_rows=255,
        signals=rng.standard_normal((n, spec.NUM_CHANNELS)).astype(np.float32),
        time=np.arange(n) / 256.0 + 128.0,
        labels=rng.integers(0, 4, n).astype(np.uint8) if with_labels else None,
        ids=None if with_labels else np.arange(1000, 1000 + n, dtype=np.int64),
        window_ends=np.array([255, 299]) if with_labels else None,
    )


@pytest.mark.parametrize("with_labels", [True, False])
def test_round_trip_numpy(with_labels):
    seg = _segment(with_labels)
    back = spec.decode_segment(spec.encode_segment(seg))
    assert (back.crew, back.seat, back.experiment, back.block, back.context_rows) == (
        seg.crew, seg.seat, seg.experiment, seg.block, seg.context_rows)
    np.testing.assert_array_equal(back.signals, seg.signals)
    np.testing.assert_array_equal(back.time, seg.time)
    if with_labels:
        np.testing.assert_array_equal(back.labels, seg.labels)
        np.testing.assert_array_equal(back.window_ends, seg.window_ends)
        assert back.ids is None
    else:
        np.testing.assert_array_equal(back.ids, seg.ids)
        assert back.labels is None and back.window_ends is None


def test_tensorflow_parse_matches_numpy_decode():
    seg = _segment(with_labels=True)
    parsed = tf.io.parse_single_example(spec.encode_segment(seg), spec.tf_feature_spec())
    signals = tf.reshape(tf.io.decode_raw(parsed[spec.SIGNALS], tf.float32),
                         [-1, spec.NUM_CHANNELS])
    np.testing.assert_array_equal(signals.numpy(), seg.signals)
    np.testing.assert_array_equal(
        tf.io.decode_raw(parsed[spec.LABELS], tf.uint8).numpy(), seg.labels)
    np.testing.assert_array_equal(
        tf.sparse.to_dense(parsed[spec.WINDOW_ENDS]).numpy(), seg.window_ends)
    assert int(parsed[spec.NUM_ROWS]) == seg.num_rows


def test_encoded_size_is_close_to_float32_rows():
    seg = _segment(with_labels=True)
    raw_float32 = seg.num_rows * spec.NUM_CHANNELS * 4
    assert len(spec.encode_segment(seg)) < 1.15 * raw_float32


def test_first_window_end():
    seg = _segment(with_labels=True)
    assert seg.first_window_end(window=256) == 255
    seg.context_rows = 0
    assert seg.first_window_end(window=64) == 63


def test_encode_rejects_misshapen_arrays():
    seg = _segment(with_labels=True)
    seg.labels = seg.labels[:-1]
    with pytest.raises(ValueError, match="labels shape"):
        spec.encode_segment(seg)


def test_check_manifest_names_the_mismatch():
    good = {"schema_version": spec.SCHEMA_VERSION, "channels": list(spec.CHANNELS),
            "classes": list(spec.CLASSES)}
    spec.check_manifest(good)
    with pytest.raises(spec.IncompatibleDataError, match="schema_version 0"):
        spec.check_manifest({**good, "schema_version": 0}, "gs://b/m.json")
    with pytest.raises(spec.IncompatibleDataError, match="channels"):
        spec.check_manifest({**good, "channels": list(spec.CHANNELS[:-1])})


def test_shard_prefix_rejects_unknown_split():
    assert spec.shard_prefix("valid") == "valid/part"
    with pytest.raises(ValueError, match="unknown split"):
        spec.shard_prefix("holdout")


def test_encoding_is_byte_identical_across_processes():
    """Map keys are serialized in a fixed order: workers of a job write the same bytes."""
    import os
    import subprocess
    import sys

    script = ("import hashlib, numpy as np\n"
              "from trainer.records import spec as s\n"
              "n = 5\n"
              "seg = s.Segment(crew=1, seat=0, experiment='CA', block=0, context_rows=0,\n"
              "    signals=np.ones((n, s.NUM_CHANNELS), np.float32), time=np.arange(n, dtype=np.float64),\n"
              "    labels=np.zeros(n, np.uint8))\n"
              "print(hashlib.sha256(s.encode_segment(seg)).hexdigest())\n")
    digests = set()
    for hash_seed in ("1", "2", "3"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed},
                             check=True)
        digests.add(out.stdout.strip().splitlines()[-1])
    assert len(digests) == 1 and len(digests.pop()) == 64
