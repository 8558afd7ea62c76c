"""A local run's memory follows its settings, not its input's size (issue 12).

The local runner (FnApiRunner) holds every grouped PCollection in memory; spilling
the parsed rows to local files (spill.py) keeps only their places in the grouping.
The end-to-end check runs the job as a child process on generated data whose test
split comes at two sizes, 4x apart (90k and 360k rows, the same training rows), with
--chunk-mib 1 as the memory setting, and measures the peak RSS of its process tree:
with spilling it grows by less than MEMORY_ALLOWANCE_MB (measured: 779.5 -> 780.3 MB),
where holding the rows in the runner (--spill off, Dataflow's mode) grows by
some 400 bytes per row (882 -> 997 MB).  The spilled run's records, statistics and
quarantine equal those of a run that holds everything in memory.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from beam_preprocess.output_reader import read_manifest, read_split_bytes
from beam_preprocess.rows import RowBatch
from beam_preprocess.spill import (SpillLocation, decode_rows, encode_rows, load_rows,
                                   spill_parts, spills)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
from measure import measure  # noqa: E402

SCALES = (0.005, 0.02)         # test splits of 90k and 360k rows
MEMORY_ALLOWANCE_MB = 48       # growth of the peak allowed from the small to the large input
SETTINGS = ["--chunk-mib", "1", "--seed", "5"]


def _batch(n: int, labels: bool, ids: bool, seed: int = 0) -> RowBatch:
    rng = np.random.default_rng(seed)
    return RowBatch(
        crew=rng.integers(1, 10, n).astype(np.int16),
        experiment=rng.integers(0, 4, n).astype(np.uint8),
        seat=rng.integers(0, 2, n).astype(np.int8),
        time=rng.random(n) * 100, signals=rng.normal(size=(n, 23)).astype(np.float32),
        order=np.arange(n, dtype=np.int64) + (3 << 40),
        labels=rng.integers(0, 4, n).astype(np.uint8) if labels else None,
        ids=np.arange(n, dtype=np.int64) * 7 if ids else None)


def _assert_same_rows(a: RowBatch, b: RowBatch) -> None:
    for name in ("crew", "experiment", "seat", "time", "signals", "order", "labels", "ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name


@pytest.mark.parametrize("labels, ids", [(True, False), (False, True), (False, False)])
def test_encoded_rows_decode_to_the_same_columns(labels, ids):
    rows = _batch(50, labels, ids)
    data = encode_rows(rows)
    assert len(data) == 16 + sum(getattr(rows, f).nbytes for f in
                                 ("crew", "experiment", "seat", "time", "signals", "order")) \
        + (50 if labels else 0) + (400 if ids else 0)
    _assert_same_rows(decode_rows(bytearray(data)), rows)


def test_spilled_parts_load_back_from_their_file(tmp_path):
    parts = [((1, 0, 0, b), (b % 2, _batch(10 + b, True, False, seed=b))) for b in range(3)]
    located = spill_parts(parts, str(tmp_path / "rows.bin"))
    assert [key for key, _ in located] == [key for key, _ in parts]
    for (_, (role, rows)), (_, (spilled_role, where)) in zip(parts, located):
        assert isinstance(where, SpillLocation) and spilled_role == role
        loaded = load_rows(where)
        _assert_same_rows(loaded, rows)
        loaded.signals[0, 0] = 1.0  # read back into memory the batch owns
    assert load_rows(parts[0][1][1]) is parts[0][1][1]  # rows that travelled inline


def test_spill_is_chosen_by_the_runner():
    assert spills("auto", [])  # the default local runner
    assert spills("auto", ["--runner", "FnApiRunner"])
    assert spills("auto", ["--runner=DirectRunner"])
    assert not spills("auto", ["--runner", "DataflowRunner"])
    assert not spills("off", ["--runner", "FnApiRunner"])
    assert spills("on", ["--runner", "PrismRunner"])
    with pytest.raises(ValueError, match="--spill on needs a local runner"):
        spills("on", ["--runner", "DataflowRunner"])


def test_spill_dir_must_be_local(tmp_path):
    from beam_preprocess.__main__ import main
    assert main(["--train", str(tmp_path / "t.csv"), "--output", str(tmp_path / "o"),
                 "--spill-dir", "gs://bucket/spill"]) == 1


def _env() -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


def _job(raw: dict, test_scale: float, output: str, *extra: str):
    run = measure([sys.executable, "-m", "beam_preprocess", "--train", raw[SCALES[0]] + "/train.csv",
                   "--test", raw[test_scale] + "/test.csv", "--output", output, *SETTINGS, *extra],
                  env=_env())
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _records(output: str) -> dict:
    manifest = read_manifest(output)
    return {split: sorted(read_split_bytes(output, split, manifest)) for split in manifest["splits"]}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> dict:
    paths = {}
    for scale in SCALES:
        out = tmp_path_factory.mktemp(f"raw{scale}")
        splits = "train,test" if scale == SCALES[0] else "test"
        subprocess.run([sys.executable, "-m", "beam_preprocess.synth", "--out", str(out),
                        "--scale", str(scale), "--seed", "2", "--splits", splits],
                       check=True, capture_output=True)
        paths[scale] = str(out)
    return paths


def test_peak_memory_does_not_follow_the_input_and_records_equal_in_memory_run(raw, tmp_path):
    spill_dir = tmp_path / "spill"
    peaks = [_job(raw, scale, str(tmp_path / f"spilled-{scale}"), "--spill-dir",
                  str(spill_dir)).peak_rss_mb for scale in SCALES]
    assert peaks[1] - peaks[0] < MEMORY_ALLOWANCE_MB, f"peak RSS MB at {SCALES}: {peaks}"
    assert os.listdir(spill_dir) == []  # the runs' spill files are gone

    spilled, in_memory = str(tmp_path / f"spilled-{SCALES[0]}"), str(tmp_path / "in-memory")
    _job(raw, SCALES[0], in_memory, "--spill", "off")
    assert _records(spilled) == _records(in_memory)
    a, b = read_manifest(spilled), read_manifest(in_memory)
    for key in ("stats", "rows", "window"):
        assert a[key] == b[key], key
    assert ({s: {k: v for k, v in e.items() if k != "shards"} for s, e in a["splits"].items()}
            == {s: {k: v for k, v in e.items() if k != "shards"} for s, e in b["splits"].items()})
    quarantine = [open(os.path.join(d, "quarantine", "bad_rows.csv")).read()
                  for d in (spilled, in_memory)]
    assert quarantine[0] == quarantine[1]
