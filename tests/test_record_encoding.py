"""Records without TensorFlow (issue 27).

trainer/records/example_proto.py writes the bytes that TensorFlow's protobufs wrote before
(`tf.train.Example(...).SerializeToString(deterministic=True)`), for edge cases and
for the real records of every split; and the Beam job (and the stand-in generator)
run where TensorFlow and the trainer's other dependencies cannot be imported,
writing the same records as a normal run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from beam_preprocess.__main__ import run
from beam_preprocess.output_reader import read_manifest, read_split_bytes
from trainer.records import example_proto as ep
from trainer.records import spec

REPO = Path(__file__).resolve().parent.parent
# What a Dataflow worker does not install (setup.py's `trainer` and `tuning` extras).
BLOCKED = ("tensorflow", "keras", "tensorboard", "matplotlib", "keras_tuner")
# Small blocks, ranges and shards, so that carries, context rows, several validation
# units and several shards per split all happen (as in test_beam_e2e.py).
ARGS = ["--window", "256", "--block-seconds", "4", "--carry-seconds", "2",
        "--valid-block-seconds", "2", "--range-mib", "4", "--chunk-mib", "1",
        "--num-shards", "2", "--seed", "7"]


def _tf_protos():
    example_pb2 = pytest.importorskip("tensorflow.core.example.example_pb2")
    feature_pb2 = pytest.importorskip("tensorflow.core.example.feature_pb2")
    return example_pb2, feature_pb2


def _tf_bytes(features: dict) -> bytes:
    """TensorFlow's serialization; features: {key: (kind, values)}."""
    example_pb2, f = _tf_protos()
    lists = {"bytes": lambda v: f.Feature(bytes_list=f.BytesList(value=v)),
             "float": lambda v: f.Feature(float_list=f.FloatList(value=v)),
             "int64": lambda v: f.Feature(int64_list=f.Int64List(value=v))}
    feature = {key: lists[kind](values) for key, (kind, values) in features.items()}
    return example_pb2.Example(features=f.Features(feature=feature)).SerializeToString(
        deterministic=True)


def _our_bytes(features: dict) -> bytes:
    make = {"bytes": ep.bytes_feature, "float": ep.float_feature, "int64": ep.int64_feature}
    return ep.encode_example({key: make[kind](values) for key, (kind, values) in features.items()})


def tf_encode_segment(segment: spec.Segment) -> bytes:
    """records.spec.encode_segment as it was with TensorFlow's protobufs (before issue 27)."""
    example_pb2, f = _tf_protos()

    def ints(*values):
        return f.Feature(int64_list=f.Int64List(value=[int(v) for v in values]))

    def raw(value):
        return f.Feature(bytes_list=f.BytesList(value=[value]))

    window_ends = (() if segment.window_ends is None
                   else np.asarray(segment.window_ends, dtype=np.int64).tolist())
    features = {
        spec.CREW: ints(segment.crew), spec.SEAT: ints(segment.seat),
        spec.EXPERIMENT: raw(segment.experiment.encode()), spec.BLOCK: ints(segment.block),
        spec.NUM_ROWS: ints(segment.num_rows), spec.CONTEXT_ROWS: ints(segment.context_rows),
        spec.SIGNALS: raw(spec._bytes(segment.signals, spec.SIGNALS_DTYPE)),
        spec.TIME: raw(spec._bytes(segment.time, spec.TIME_DTYPE)),
        spec.LABELS: raw(spec._bytes(segment.labels, spec.LABELS_DTYPE)),
        spec.IDS: raw(spec._bytes(segment.ids, spec.IDS_DTYPE)),
        spec.WINDOW_ENDS: ints(*window_ends),
    }
    return example_pb2.Example(features=f.Features(feature=features)).SerializeToString(
        deterministic=True)


EDGE_CASES = {
    "no features": {},
    "empty lists": {"b": ("bytes", []), "f": ("float", []), "i": ("int64", [])},
    "empty bytes values": {"labels": ("bytes", [b""]), "x": ("bytes", [b"", b"a", b""])},
    "lengths of 1, 2 and 3 varint bytes": {
        "a": ("bytes", [b"x" * 127]), "b": ("bytes", [b"y" * 128]),
        "c": ("bytes", [bytes(range(256)) * 600])},
    "int64 edges": {"i": ("int64", [0, 1, -1, 127, 128, 300, -300, 2**31, 2**32 + 5,
                                    2**63 - 1, -2**63])},
    "large counts": {"num_rows": ("int64", [18_000_000]), "ids": ("int64", [2**40, 3 * 10**12])},
    "many int64 values": {"window_ends": ("int64", list(range(-5, 20_000, 7)))},
    "floats": {"f": ("float", [0.0, -0.0, 1.5, 0.1, -3e38, 1e-45, 2.5e-40, float("inf"),
                               float("nan")])},
    "map order: prefixes and non-ASCII": {
        k: ("int64", [i]) for i, k in enumerate(["b", "a", "ab", "abc", "ac", "", "z", "é",
                                                "window_ends", "window"])},
    "the record keys": {k: ("int64", [i]) for i, k in enumerate(
        [spec.CREW, spec.SEAT, spec.EXPERIMENT, spec.BLOCK, spec.NUM_ROWS, spec.CONTEXT_ROWS,
         spec.SIGNALS, spec.TIME, spec.LABELS, spec.IDS, spec.WINDOW_ENDS])},
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_cases_are_tensorflows_bytes(name):
    assert _our_bytes(EDGE_CASES[name]) == _tf_bytes(EDGE_CASES[name])


@pytest.mark.parametrize("value", [2**63, -2**63 - 1])
def test_int64_out_of_range_is_refused_as_by_tensorflow(value):
    with pytest.raises(ValueError):
        _tf_bytes({"i": ("int64", [value])})
    with pytest.raises(ValueError, match="out of range"):
        _our_bytes({"i": ("int64", [value])})


# --- the Beam job, with and without TensorFlow ---

def _blocking_env(tmp_path: Path) -> tuple[dict, Path]:
    """An environment in which BLOCKED cannot be imported (each a package that raises
    ImportError, ahead of site-packages) and every attempt is logged with its stack."""
    blocker, log = tmp_path / "blocker", tmp_path / "import-attempts.log"
    for name in BLOCKED:
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(textwrap.dedent(f"""\
            import os, traceback
            with open(os.environ["PILOTSTATE_BLOCK_LOG"], "a") as log:
                log.write("import {name}\\n" + "".join(traceback.format_stack()) + "\\n")
            raise ImportError("{name} is made unimportable by tests/test_record_encoding.py")
            """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]),
           "PILOTSTATE_BLOCK_LOG": str(log)}
    return env, log


@pytest.fixture(scope="module")
def blocked_run(tmp_path_factory):
    """Stand-in CSVs and the Beam job, each a process that cannot import BLOCKED."""
    tmp = tmp_path_factory.mktemp("no-tensorflow")
    env, log = _blocking_env(tmp)
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "made unimportable" in probe.stderr
    log.unlink()
    raw = tmp / "raw"
    synth = subprocess.run([sys.executable, "-m", "beam_preprocess.synth", "--out", str(raw),
                            "--scale", "0.01", "--seed", "5"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert synth.returncode == 0, synth.stderr[-3000:]
    output = str(tmp / "out")
    job = subprocess.run([sys.executable, "-m", "beam_preprocess",
                          "--train", str(raw / "train.csv"), "--test", str(raw / "test.csv"),
                          "--output", output, *ARGS],
                         env=env, capture_output=True, text=True, timeout=600)
    return raw, output, job, log


@pytest.fixture(scope="module")
def normal_output(blocked_run, tmp_path_factory):
    """The same job in this process, with TensorFlow importable."""
    raw = blocked_run[0]
    output = str(tmp_path_factory.mktemp("with-tensorflow") / "out")
    run(["--train", str(raw / "train.csv"), "--test", str(raw / "test.csv"),
         "--output", output, *ARGS])
    return output


def test_the_job_runs_without_tensorflow(blocked_run):
    _, output, job, log = blocked_run
    assert job.returncode == 0, job.stderr[-3000:]
    assert "wrote" in job.stdout
    attempts = log.read_text() if log.exists() else ""
    assert not attempts, f"the generator or the job tried to import:\n{attempts[:4000]}"
    assert set(read_manifest(output)["splits"]) == set(spec.SPLITS)


def test_the_records_are_those_of_a_normal_run(blocked_run, normal_output):
    output = blocked_run[1]
    blocked, normal = read_manifest(output), read_manifest(normal_output)
    for split in spec.SPLITS:
        assert blocked["splits"][split]["shards"] == normal["splits"][split]["shards"]
        # The runner may order the records of a shard differently from run to run.
        ours = sorted(read_split_bytes(output, split, blocked))
        assert ours and ours == sorted(read_split_bytes(normal_output, split, normal)), split


def test_real_records_are_tensorflows_bytes(normal_output):
    """Every record of every split: the bytes TensorFlow's protobufs make of its segment."""
    manifest = read_manifest(normal_output)
    seen = {split: {"records": 0} for split in spec.SPLITS}
    for split in spec.SPLITS:
        for record in read_split_bytes(normal_output, split, manifest):
            segment = spec.decode_segment(record)
            assert tf_encode_segment(segment) == record
            assert spec.encode_segment(segment) == record
            counts = seen[split]
            counts["records"] += 1
            for name in ("labels", "ids", "window_ends"):
                counts[name] = counts.get(name, 0) + (getattr(segment, name) is not None)
            counts["context"] = counts.get("context", 0) + (segment.context_rows > 0)
    for split, counts in seen.items():
        n = counts["records"]
        assert n > 0, split
        assert counts["labels"] == (0 if split == "test" else n), (split, counts)
        assert counts["ids"] == (n if split == "test" else 0), (split, counts)
        # A valid record whose windows were all left out of the balanced selection has none.
        assert (counts["window_ends"] > 0) if split == "valid" else (counts["window_ends"] == 0), (
            split, counts)
    assert seen["train"]["context"] > 0 and seen["test"]["context"] > 0, seen
