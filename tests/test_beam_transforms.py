"""Each transform of beam_preprocess on a real runner (TestPipeline + assert_that)."""
from __future__ import annotations

import gzip
import io

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_preprocess import kaggle_schema as ks
from beam_preprocess.csv_source import (LineChunk, ReadCsvChunks, iter_line_blocks,
                                        list_inputs)
from beam_preprocess.options import PreprocessConfig
from beam_preprocess.parse import BAD_ROWS, ROWS_IN, ParseChunks, parse_chunk
from beam_preprocess.pipeline import (BalanceValidation, BuildSegments, ChooseValidation,
                                      ComputeStatistics)
from beam_preprocess.scaling import Moments, Scaler, merge_moments
from beam_preprocess.segments import BalancedThresholds
from beam_preprocess.sessions import session_block_keys
from beam_preprocess.splits import SplitError, choose_validation_units
from beam_testdata import csv_lines, text_sorted, train_frame, write_lines
from trainer.records import spec as record_spec
from trainer.records.spec import Segment


def pipeline():
    return BeamTestPipeline(runner="FnApiRunner")


def _input(path, kind="train"):
    return list_inputs(str(path), kind, ks.TRAIN_COLUMNS if kind == "train" else ks.TEST_COLUMNS)


def _numbered_lines(chunk: LineChunk):
    lines = chunk.data.decode().split("\n")
    if lines[-1] == "":
        lines.pop()
    return [(chunk.first_line + i, line) for i, line in enumerate(lines)]


@pytest.mark.parametrize("compress", [False, True])
def test_read_csv_chunks_numbers_every_line_once(tmp_path, compress):
    lines = csv_lines(text_sorted(train_frame(crews=(1,), experiments=("CA",), seconds=2)))
    path = tmp_path / ("train.csv.gz" if compress else "train.csv")
    if compress:
        with gzip.open(path, "wt") as f:
            f.write("\n".join(lines) + "\n")
    else:
        write_lines(path, lines)
    files = _input(path)
    expected = [(i + 1, line) for i, line in enumerate(lines)][1:]
    with pipeline() as p:
        chunks = p | ReadCsvChunks(files, range_bytes=10_000, chunk_bytes=3_000)
        assert_that(chunks | beam.FlatMap(_numbered_lines), equal_to(expected))


def test_iter_line_blocks_stops_after_the_line_holding_the_range_end():
    data = b"aa\nbbbb\ncc\ndd\n"
    blocks = list(iter_line_blocks(io.BytesIO(data), 0, 4, chunk_bytes=2))
    assert b"".join(blocks) == b"aa\nbbbb\n"  # byte 3 starts line 2: owned, read whole


def test_parse_chunks_outputs_rows_bad_rows_and_line_counts(tmp_path):
    lines = csv_lines(train_frame(crews=(1,), experiments=("DA",), seconds=1))
    lines[3] = lines[3].replace(",A", ",Q")
    write_lines(tmp_path / "train.csv", lines)
    files = _input(tmp_path / "train.csv")
    chunk = LineChunk(files[0].index, 2, ("\n".join(lines[1:]) + "\n").encode())
    with pipeline() as p:
        out = (p | beam.Create([chunk])
               | beam.ParDo(ParseChunks(files)).with_outputs(BAD_ROWS, ROWS_IN, main="rows"))
        assert_that(out.rows | beam.Map(len), equal_to([len(lines) - 2]), label="Rows")
        assert_that(out[BAD_ROWS] | beam.Map(lambda r: (r.line, r.reason)),
                    equal_to([(4, "unknown event 'Q'")]), label="Bad")
        assert_that(out[ROWS_IN], equal_to([len(lines) - 1]), label="Count")


def _batches(frame, tmp_path, kind="train"):
    write_lines(tmp_path / f"{kind}.csv", csv_lines(frame))
    files = _input(tmp_path / f"{kind}.csv", kind)
    chunk = LineChunk(0, 2, open(tmp_path / f"{kind}.csv", "rb").read().split(b"\n", 1)[1])
    batch, bad = parse_chunk(chunk, files[0])
    assert not bad
    return batch


def test_compute_statistics_uses_training_rows_only(tmp_path):
    frame = train_frame(crews=(1, 2, 3), seconds=2)
    batch = _batches(frame, tmp_path)
    config = PreprocessConfig(output="unused", holdout_crews=(3,), valid_block_seconds=0.25)
    train = frame[frame.crew != 3][list(record_spec.CHANNELS)].to_numpy(np.float32).astype(float)
    mean, sd = train.mean(axis=0), train.std(axis=0)
    sd[sd == 0] = 1.0  # the dead ecg channel

    def check(stats):
        assert stats[0]["rows"]["global"] == len(train)
        np.testing.assert_allclose(stats[0]["center"]["global"], mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(stats[0]["scale"]["global"], sd, rtol=1e-9)

    with pipeline() as p:
        rows = p | beam.Create([batch])
        valid = rows | ChooseValidation(config)
        assert_that(rows | "Stats" >> ComputeStatistics(config, valid), check)


def test_robust_statistics_per_pilot_are_median_and_iqr(tmp_path):
    frame = train_frame(crews=(1,), seconds=2)
    batch = _batches(frame, tmp_path)
    config = PreprocessConfig(output="unused", scaling="robust", scale_by="pilot",
                              valid_fraction=0.0, valid_block_seconds=0.25)
    pilot = frame[frame.seat == 1][list(record_spec.CHANNELS)].to_numpy(np.float32).astype(float)
    q25, median, q75 = np.percentile(pilot, [25, 50, 75], axis=0)
    iqr = np.where(q75 - q25 > 0, q75 - q25, 1.0)

    def check(stats):
        np.testing.assert_allclose(stats[0]["center"]["crew1-seat1"], median)
        np.testing.assert_allclose(stats[0]["scale"]["crew1-seat1"], iqr)
        scaler = Scaler(stats[0])
        assert scaler.key(1, 1) == "crew1-seat1" and scaler.key(9, 0) == "global"

    with pipeline() as p:
        rows = p | beam.Create([batch])
        valid = rows | ChooseValidation(config)
        assert_that(rows | "Stats" >> ComputeStatistics(config, valid), check)


def test_choose_validation_units_stratifies_and_is_seeded():
    rng = np.random.default_rng(0)
    hist = []
    for unit in range(40):
        counts = np.zeros((2, 4), np.int64)
        counts[:, 0] = 100
        if unit % 10 == 3:
            counts[:, 1] = 50  # class B in 4 units only
        hist.append(((1, 0, unit), counts))
    rng.shuffle(hist)
    chosen = choose_validation_units(hist, 0.25, seed=1)
    assert chosen == choose_validation_units(list(reversed(hist)), 0.25, seed=1)
    assert any(u % 10 == 3 for _, _, u in chosen)  # B got a unit
    assert any(u % 10 == 3 for _, _, u in set((1, 0, u) for u in range(40)) - chosen)
    assert chosen != choose_validation_units(hist, 0.25, seed=2)
    lonely = [((1, 0, 0), np.array([[10, 5, 0, 0], [10, 0, 0, 0]]))]
    with pytest.raises(SplitError, match="class B has no validation window"):
        choose_validation_units(lonely, 0.5, seed=0)


def test_merge_moments_matches_numpy():
    x = np.random.default_rng(1).normal(3, 2, (1000, 2))
    parts = [Moments(i, len(p), p.mean(0), ((p - p.mean(0)) ** 2).sum(0))
             for i, p in enumerate(np.split(x, [10, 400, 401]))]
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_moments(merged, part)
    np.testing.assert_allclose(merged.mean, x.mean(0))
    np.testing.assert_allclose(merged.m2 / merged.count, x.var(0))


def test_build_segments_carries_context_within_a_split(tmp_path):
    frame = train_frame(crews=(1,), experiments=("CA",), seconds=3)
    frame = frame[frame.seat == 0]
    batch = _batches(frame, tmp_path)
    config = PreprocessConfig(output="unused", window=64, block_seconds=1.0, carry_seconds=0.5)
    stats = {"method": "standard", "by": "global",
             "center": {"global": [0.0] * 23}, "scale": {"global": [1.0] * 23}}

    def check(segments):
        segments = sorted((s for _, s in segments), key=lambda s: s.block)
        assert [s.block for s in segments] == [0, 1, 2]
        assert [s.context_rows for s in segments] == [0, 63, 63]
        for previous, s in zip(segments, segments[1:]):
            np.testing.assert_array_equal(s.time[:63], previous.time[-63:])
            np.testing.assert_array_equal(s.signals[:63], previous.signals[-63:])
        own = np.concatenate([s.time[s.context_rows:] for s in segments])
        np.testing.assert_array_equal(own, np.sort(frame.time.to_numpy()))

    with pipeline() as p:
        segments = (p | beam.Create([batch])
                    | beam.FlatMap(session_block_keys, 1.0, 0.5) | beam.GroupByKey()
                    | beam.ParDo(BuildSegments(config, ["train.csv"]),
                                 beam.pvalue.AsSingleton(p | "V" >> beam.Create([frozenset()])),
                                 beam.pvalue.AsSingleton(p | "S" >> beam.Create([stats]))))
        assert_that(segments, check)


def _segment(labels, crew=1):
    n = len(labels)
    return Segment(crew=crew, seat=0, experiment="CA", block=0, context_rows=0,
                   signals=np.zeros((n, 23), np.float32), time=np.arange(n) / 256.0,
                   labels=np.asarray(labels, np.uint8))


def test_balance_validation_draws_the_same_number_per_class():
    segments = [_segment([0] * 40 + [1] * 30 + [2] * 50 + [3] * 20, crew=c) for c in (1, 2)]
    config = PreprocessConfig(output="unused", window=4, seed=3)

    def check(out):
        labels = np.concatenate([s.labels[s.window_ends] for s in out])
        counts = np.bincount(labels, minlength=4)
        assert counts.tolist() == [40, 40, 40, 40]  # class D: 2 x 20 ends
        for s in out:
            assert s.window_ends.min() >= 3 and np.all(np.diff(s.window_ends) > 0)

    with pipeline() as p:
        assert_that(p | beam.Create(segments) | BalanceValidation(config), check)


def test_balanced_thresholds_name_a_class_without_windows():
    combine = BalancedThresholds(cap=None)
    acc = combine.add_input(combine.create_accumulator(),
                            [np.array([1], np.uint64), np.zeros(0, np.uint64),
                             np.array([5], np.uint64), np.array([7], np.uint64)])
    with pytest.raises(ValueError, match="no validation window of class"):
        combine.extract_output(acc)


def test_holdout_crews_pipeline_with_robust_pilot_scaling(tmp_path):
    from beam_preprocess.__main__ import run
    from beam_preprocess.output_reader import read_manifest, read_split
    write_lines(tmp_path / "train.csv", csv_lines(text_sorted(train_frame(crews=(1, 2, 3), seconds=3))))
    out = str(tmp_path / "out")
    run(["--train", str(tmp_path / "train.csv"), "--output", out, "--holdout-crews", "3",
         "--scaling", "robust", "--scale-by", "pilot", "--window", "64",
         "--block-seconds", "2", "--carry-seconds", "1"])
    manifest = read_manifest(out)
    assert {s.crew for s in read_split(out, "valid", manifest)} == {3}
    assert {s.crew for s in read_split(out, "train", manifest)} == {1, 2}
    assert "crew3-seat0" not in manifest["stats"]["center"]  # unseen pilot: global stats
    assert set(manifest["splits"]["valid"]["windows_per_class"].values()) != {0}
