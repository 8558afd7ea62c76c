"""End to end: generated Kaggle-format data -> beam_preprocess on the FnApiRunner.

One run (session fixtures `raw` and `output`, which test_pipeline_to_trainer.py
also uses) is shared by the checks; a second and third run check
determinism and the replace-whole rule.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from beam_preprocess import kaggle_schema as ks
from beam_preprocess.__main__ import run
from beam_preprocess.output_dir import OutputExistsError
from beam_preprocess.output_reader import read_manifest, read_split, read_split_bytes
from trainer.records import spec as record_spec

WINDOW = 256
# Small blocks and ranges so that carries, several ranges per file and several
# validation units all happen at this small scale.
ARGS = ["--window", str(WINDOW), "--block-seconds", "4", "--carry-seconds", "2", "--valid-block-seconds", "2",
        "--range-mib", "4", "--chunk-mib", "1", "--num-shards", "2", "--seed", "7"]


@pytest.fixture(scope="session")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    subprocess.run([sys.executable, "-m", "beam_preprocess.synth", "--out", str(out),
                    "--scale", "0.01", "--seed", "3"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def output(raw, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("out") / "run1")
    run(["--train", str(raw / "train.csv"), "--test", str(raw / "test.csv"),
         "--output", out, *ARGS])
    return out


@pytest.fixture(scope="module")
def manifest(output):
    return read_manifest(output)


@pytest.fixture(scope="module")
def records(output, manifest):
    return {split: read_split(output, split, manifest) for split in manifest["splits"]}


@pytest.fixture(scope="module")
def train_csv(raw):
    frame = pd.read_csv(raw / "train.csv")
    return frame.sort_values(["crew", "experiment", "seat", "time"], kind="stable")


def own_rows(segment):
    return slice(segment.context_rows, None)


def test_row_accounting(manifest, raw):
    lines = sum(sum(1 for _ in open(raw / name)) - 1 for name in ("train.csv", "test.csv"))
    rows = manifest["rows"]
    assert rows["in"] == lines
    assert rows["in"] == rows["written"] + rows["quarantined"]
    assert rows["quarantined"] == 0
    assert sum(s["rows"] for s in manifest["splits"].values()) == rows["written"]


def test_manifest_keys(manifest):
    for key in ("schema_version", "channels", "classes", "window", "sample_rate_hz", "splits",
                "stats", "rows", "input_fingerprints", "options", "package_version", "created"):
        assert key in manifest, key
    assert manifest["window"] == WINDOW
    assert {f["kind"] for f in manifest["input_fingerprints"]} == {"train", "test"}
    assert all(len(s["shards"]) == 2 for s in manifest["splits"].values())


def test_records_sorted_and_complete(records, train_csv, manifest):
    """Own rows of train + valid are exactly the sorted CSV sessions, scaled."""
    center = np.array(manifest["stats"]["center"]["global"])
    scale = np.array(manifest["stats"]["scale"]["global"])
    for (crew, experiment, seat), session in train_csv.groupby(["crew", "experiment", "seat"]):
        segs = sorted((s for split in ("train", "valid") for s in records[split]
                       if (s.crew, s.experiment, s.seat) == (crew, experiment, seat)),
                      key=lambda s: s.time[s.context_rows])
        for s in segs:
            assert np.all(np.diff(s.time) > 0)
        time = np.concatenate([s.time[own_rows(s)] for s in segs])
        np.testing.assert_array_equal(time, session["time"].to_numpy())
        signals = np.concatenate([s.signals[own_rows(s)] for s in segs]).astype(np.float64)
        raw = session[list(ks.CHANNELS)].to_numpy().astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(signals, (raw - center) / scale, rtol=1e-5, atol=1e-5)
        labels = np.concatenate([s.labels[own_rows(s)] for s in segs])
        expected = session["event"].map(record_spec.CLASSES.index).to_numpy()
        np.testing.assert_array_equal(labels, expected)


def test_context_rows_repeat_the_previous_rows_of_the_same_split(records):
    for split, segs in records.items():
        rows = {}
        for s in segs:
            key = (s.crew, s.experiment, s.seat)
            rows.setdefault(key, []).append(s.time[own_rows(s)])
        session_times = {k: np.sort(np.concatenate(v)) for k, v in rows.items()}
        carried = 0
        for s in segs:
            if not s.context_rows:
                continue
            carried += 1
            times = session_times[(s.crew, s.experiment, s.seat)]
            start = np.searchsorted(times, s.time[s.context_rows])
            np.testing.assert_array_equal(s.time[:s.context_rows],
                                          times[start - s.context_rows:start])
        if split != "valid":  # valid runs rarely cross a block boundary
            assert carried > 0, f"no record of {split} carries context"


def test_training_split_is_standardized(records):
    signals = np.concatenate([s.signals[own_rows(s)] for s in records["train"]]).astype(np.float64)
    np.testing.assert_allclose(signals.mean(axis=0), 0, atol=1e-3)
    sd = signals.std(axis=0)
    live = sd > 0
    np.testing.assert_allclose(sd[live], 1, atol=1e-3)


def test_no_sample_shared_between_splits(records):
    def samples(split):
        return {(s.crew, s.experiment, s.seat, t) for s in records[split] for t in s.time}
    assert not samples("train") & samples("valid")


def test_validation_is_balanced(records, manifest):
    per_class = manifest["splits"]["valid"]["windows_per_class"]
    assert len(set(per_class.values())) == 1 and min(per_class.values()) > 0
    labels = np.concatenate([s.labels[s.window_ends] for s in records["valid"]
                             if s.window_ends is not None])
    assert np.bincount(labels, minlength=4).tolist() == [per_class[c] for c in record_spec.CLASSES]
    for s in records["valid"]:
        if s.window_ends is not None:
            assert s.window_ends.min() >= s.first_window_end(WINDOW)


def test_window_counts(records, manifest):
    for split in ("train", "test"):
        windows = sum(max(0, s.num_rows - s.first_window_end(WINDOW)) for s in records[split])
        assert manifest["splits"][split]["windows"] == windows


def test_test_ids_complete(records, raw, manifest):
    ids = np.concatenate([s.ids[own_rows(s)] for s in records["test"]])
    expected = pd.read_csv(raw / "test.csv", usecols=["id"])["id"].to_numpy()
    assert len(ids) == len(expected) == manifest["splits"]["test"]["ids"]["count"]
    np.testing.assert_array_equal(np.sort(ids), np.sort(expected))


def test_size_is_within_budget(output, manifest):
    rows = manifest["splits"]["train"]["rows"] + manifest["splits"]["valid"]["rows"]
    size = sum(os.path.getsize(os.path.join(output, name)) for split in ("train", "valid")
               for name in manifest["splits"][split]["shards"])
    assert size <= 1.5 * rows * record_spec.NUM_CHANNELS * 4


def _record_bytes(output, split):
    return sorted(read_split_bytes(output, split))


def test_deterministic_and_replaced_whole(raw, output, manifest, tmp_path):
    second = str(tmp_path / "run2")
    argv = ["--train", str(raw / "train.csv"), "--test", str(raw / "test.csv"),
            "--output", second, *ARGS]
    run(argv)
    again = read_manifest(second)
    assert again["stats"] == manifest["stats"]
    for split in manifest["splits"]:
        assert _record_bytes(second, split) == _record_bytes(output, split), split

    with pytest.raises(OutputExistsError):
        run(argv)
    # A shard of an earlier run with another shard count is ours, so it goes too.
    stray = os.path.join(second, "train", "part-00007-of-00009.tfrecord.gz")
    open(stray, "w").close()
    run(argv + ["--overwrite"])
    assert not os.path.exists(stray)
    assert read_manifest(second)["splits"]["train"]["records"] == manifest["splits"]["train"]["records"]
