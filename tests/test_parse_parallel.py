"""Issue 27, part 3: both cores.  pyarrow's CSV reader parses a chunk exactly as pandas'
C engine did (same RowBatch, same quarantined lines and reasons), and the local runner
runs two workers by default with the same records as one."""
from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from beam_preprocess import options, parse
from beam_preprocess.__main__ import main, run
from beam_preprocess.csv_source import InputFile, LineChunk, count_newlines
from beam_preprocess.output_reader import read_manifest, read_split_bytes
from beam_testdata import csv_lines, loft_frame, text_sorted, train_frame, write_lines

TRAIN = InputFile(0, "train.csv", "train", 0, 0, False)
TEST = InputFile(1, "test.csv", "test", 0, 0, False)
SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1", "--range-mib", "1", "--chunk-mib", "1"]


@pytest.fixture(scope="module")
def train_lines() -> list[str]:
    """Data lines (no header) of a small train file, numbers with 5 decimals."""
    return csv_lines(text_sorted(train_frame(crews=(1,), experiments=("CA", "SS"), seconds=1)))[1:]


@pytest.fixture(scope="module")
def test_lines() -> list[str]:
    return csv_lines(loft_frame(crews=(2,), seconds=1))[1:]


def _set(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def _same_batch(a, b) -> None:
    assert (a is None) == (b is None)
    if a is None:
        return
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert (x is None) == (y is None), field.name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, field.name
            assert x.tobytes() == y.tobytes(), field.name  # bit for bit (nan, -0.0 too)


def _outcome(chunk: LineChunk, file: InputFile, engine: str):
    try:
        return parse.parse_chunk(chunk, file, engine)
    except Exception as err:  # the job fails: the same way with either engine
        return err


def _both(data: bytes, file: InputFile, first_line: int = 2):
    """(batch, bad rows), or the exception, of the arrow engine, checked to equal the
    pandas engine's."""
    chunk = LineChunk(file.index, first_line, data)
    arrow, pandas = _outcome(chunk, file, "arrow"), _outcome(chunk, file, "pandas")
    if isinstance(arrow, Exception) or isinstance(pandas, Exception):
        assert (type(arrow), str(arrow)) == (type(pandas), str(pandas))
        return arrow
    _same_batch(arrow[0], pandas[0])
    assert arrow[1] == pandas[1]
    return arrow


# train columns: crew 0, experiment 1, time 2, seat 3, eeg_fp1 4, eeg_f7 5, eeg_f8 6, eeg_t4 7,
# eeg_t6 8, eeg_t5 9, eeg_t3 10, eeg_fp2 11, eeg_o1 12, eeg_p3 13, eeg_pz 14, ..., r 25, event 27
TRAIN_BREAKS = {
    "text in a number": (lambda l: _set(l, 7, "abc"), "non-numeric value 'abc' in column eeg_t4"),
    "two dots": (lambda l: _set(l, 25, "1.2.3"), "non-numeric value '1.2.3' in column r"),
    "quoted number": (lambda l: _set(l, 5, '"1.5"'), "non-numeric value '\"1.5\"' in column eeg_f7"),
    "blank": (lambda l: _set(l, 6, " "), "non-numeric value ' ' in column eeg_f8"),
    "empty field": (lambda l: _set(l, 8, ""), "missing or non-finite value in column eeg_t6"),
    "empty time": (lambda l: _set(l, 2, ""), "missing or non-finite value in column time"),
    "nan": (lambda l: _set(l, 10, "nan"), "missing or non-finite value in column eeg_t3"),
    "NaN": (lambda l: _set(l, 10, "NaN"), "missing or non-finite value in column eeg_t3"),
    "NAN (not pandas' nan)": (lambda l: _set(l, 10, "NAN"), "non-numeric value 'NAN' in column eeg_t3"),
    "+nan": (lambda l: _set(l, 10, "+nan"), "non-numeric value '+nan' in column eeg_t3"),
    "inf": (lambda l: _set(l, 12, "inf"), "missing or non-finite value in column eeg_o1"),
    "-Infinity": (lambda l: _set(l, 12, "-Infinity"), "missing or non-finite value in column eeg_o1"),
    "NA": (lambda l: _set(l, 12, "NA"), "missing or non-finite value in column eeg_o1"),
    "null": (lambda l: _set(l, 12, "null"), "missing or non-finite value in column eeg_o1"),
    "1e400": (lambda l: _set(l, 13, "1e400"), "missing or non-finite value in column eeg_p3"),
    "beyond float32": (lambda l: _set(l, 13, "1e39"), "missing or non-finite value in column eeg_p3"),
    "TRUE": (lambda l: _set(l, 14, "TRUE"), "non-numeric value 'TRUE' in column eeg_pz"),
    "spaces around a number": (lambda l: _set(l, 15, " 1.25 "), None),
    "17 digits": (lambda l: _set(l, 16, "33.160301000000004"), None),
    "30 digits": (lambda l: _set(l, 16, "0.123456789012345678901234567891"), None),
    "unknown crew": (lambda l: _set(l, 0, "99"), "unknown crew 99"),
    "crew 1.5": (lambda l: _set(l, 0, "1.5"), "unknown crew 1.5"),
    "unknown seat": (lambda l: _set(l, 3, "2"), "unknown seat 2"),
    "unknown experiment": (lambda l: _set(l, 1, "XX"), "unknown experiment 'XX' in a train file"),
    "test experiment": (lambda l: _set(l, 1, "LOFT"), "unknown experiment 'LOFT' in a train file"),
    "experiment with a space": (lambda l: _set(l, 1, "CA "), "unknown experiment 'CA ' in a train"),
    "empty experiment": (lambda l: _set(l, 1, ""), "unknown experiment nan in a train file"),
    "NA experiment": (lambda l: _set(l, 1, "NA"), "unknown experiment nan in a train file"),
    "unknown event": (lambda l: _set(l, 27, "E"), "unknown event 'E'"),
    "lower-case event": (lambda l: _set(l, 27, "a"), "unknown event 'a'"),
    "too few fields": (lambda l: ",".join(l.split(",")[:20]), "20 fields, expected 28"),
    "too many fields": (lambda l: l + ",1.5", "29 fields, expected 28"),
    "empty line": (lambda l: "", "empty line"),
    "not UTF-8 in a number": (lambda l: _set(l, 9, "1\udcff"), UnicodeDecodeError),
    "not UTF-8 in an experiment": (lambda l: _set(l, 1, "C\udcff"), UnicodeDecodeError),
}


@pytest.mark.parametrize("case", sorted(TRAIN_BREAKS))
def test_arrow_and_pandas_give_the_same_rows_and_reasons(train_lines, case):
    breaker, reason = TRAIN_BREAKS[case]
    lines = list(train_lines)
    lines[40] = breaker(lines[40])
    result = _both(("\n".join(lines) + "\n").encode(errors="surrogateescape"), TRAIN)
    if isinstance(reason, type):  # the job fails, as before (pandas decides)
        assert isinstance(result, reason)
        return
    batch, bad = result
    if reason is None:
        assert not bad and len(batch) == len(lines)
    else:
        assert [(r.line, r.reason) for r in bad] == [(42, bad[0].reason)]
        assert reason in bad[0].reason
        assert len(batch) == len(lines) - 1


def test_many_breaks_in_one_chunk_crlf_and_an_unterminated_last_line(train_lines):
    lines = list(train_lines)
    quarantined = [(b, r) for b, r in TRAIN_BREAKS.values() if isinstance(r, str)]
    for offset, (breaker, _) in enumerate(quarantined):
        lines[10 + 5 * offset] = breaker(lines[10 + 5 * offset])
    data = "\r\n".join(lines).encode()  # no final line end
    batch, bad = _both(data, TRAIN, first_line=7)
    suspect = [r for r in bad if r.line == 7 + len(lines) - 1]
    assert suspect and suspect[0].reason.startswith(parse.NO_FINAL_LINE_END)
    assert all("\r" not in r.raw for r in bad)
    assert len(bad) == len(quarantined) + 1 and len(batch) == len(lines) - len(bad)


def test_test_files_ids_and_clean_chunks(test_lines):
    lines = list(test_lines)
    lines[5] = _set(lines[5], 0, "12.5")
    lines[9] = _set(lines[9], 0, "")
    batch, bad = _both(("\n".join(lines) + "\n").encode(), TEST)
    assert [(r.line, r.reason) for r in bad] == [
        (7, "id 12.5 is not an integer"), (11, "missing or non-finite value in column id")]
    assert batch.ids.dtype == np.int64 and len(batch) == len(lines) - 2
    clean, none = _both(("\n".join(test_lines) + "\n").encode(), TEST)
    assert not none and len(clean) == len(test_lines)


def test_raw_text_of_a_bad_value_after_a_line_of_the_wrong_shape(train_lines):
    """(Before issue 27 the raw text of such a line was cut from the chunk without the
    wrong-shape lines, at the old offsets: another line's bytes.)"""
    lines = list(train_lines)
    lines[2] = ",".join(lines[2].split(",")[:20])
    lines[6] = _set(lines[6], 7, "abc")
    lines[9] = _set(lines[9], 0, "99")
    _, bad = _both(("\n".join(lines) + "\n").encode(), TRAIN)
    assert [(r.line, r.raw) for r in bad] == [(4, lines[2]), (8, lines[6]), (11, lines[9])]


def test_a_clean_chunk_is_read_by_arrow_alone(train_lines, monkeypatch):
    def no_pandas(*args):
        raise AssertionError("pandas read a chunk that pyarrow can read")

    monkeypatch.setattr(parse, "_pandas_columns", no_pandas)
    lines = list(train_lines)
    lines[3] = _set(lines[3], 0, "99")   # bad rows found after parsing need no pandas
    lines[4] = lines[4] + ",1"
    batch, bad = parse.parse_chunk(LineChunk(0, 2, ("\r\n".join(lines) + "\r\n").encode()), TRAIN)
    assert [r.reason for r in bad] == ["unknown crew 99", "29 fields, expected 28"]
    assert [r.raw for r in bad] == [lines[3], lines[4]]
    assert len(batch) == len(lines) - 2
    lines[4] = train_lines[4]   # only a bad value: pyarrow reads the whole chunk at once
    batch, bad = parse.parse_chunk(LineChunk(0, 2, ("\n".join(lines) + "\n").encode()), TRAIN)
    assert [(r.line, r.reason, r.raw) for r in bad] == [(5, "unknown crew 99", lines[3])]


def test_a_carriage_return_inside_a_line_still_fails_the_job(train_lines):
    lines = list(train_lines)
    lines[3] = lines[3].replace(",", ",\r", 1)  # two rows to both parsers, one line here
    chunk = LineChunk(0, 2, ("\n".join(lines) + "\n").encode())
    for engine in parse.ENGINES:
        with pytest.raises(RuntimeError, match="parsed .* rows from .* lines near line 2"):
            parse.parse_chunk(chunk, TRAIN, engine)


@pytest.mark.parametrize("data, reasons", [
    (b"\r", ["suspect: the file's last line has no line end, so it may be cut short; empty line"]),
    (b"\n", ["empty line"]),
])
def test_a_chunk_of_one_empty_line(data, reasons):
    batch, bad = _both(data, TRAIN)
    assert batch is None and [r.reason for r in bad] == reasons


def test_parse_chunks_counts_every_line(train_lines):
    data = ("\n".join(train_lines[:50]) + "\n\r").encode()  # a stray CR after the last line end
    out = list(parse.ParseChunks([TRAIN]).process(LineChunk(0, 2, data)))
    tagged = collections.defaultdict(list)
    for item in out:
        tagged[getattr(item, "tag", "rows")].append(getattr(item, "value", item))
    assert tagged[parse.ROWS_IN] == [51]
    assert tagged[parse.UNTERMINATED] == [("train.csv", 52)]
    assert len(tagged["rows"][0]) == 50 and [r.line for r in tagged[parse.BAD_ROWS]] == [52]


def test_arrow_and_pandas_read_every_float_alike():
    """Correctly rounded both: random decimals of 1-21 significant digits, shortest
    round-trip reprs, 17-digit float noise and exponents, as float64 bit patterns."""
    rng = np.random.default_rng(27)
    digits = rng.integers(0, 10, (60_000, 21)).astype(str)
    lengths, points = rng.integers(1, 22, 60_000), rng.integers(0, 22, 60_000)
    texts = []
    for row, n, p in zip(digits, lengths, points):
        mantissa = "".join(row[:n])
        texts.append(mantissa[:p] + ("." + mantissa[p:] if p < n else "") or "0")
    x = rng.normal(0, 100, 60_000)
    texts += [repr(float(v)) for v in x] + [f"{v:.17g}" for v in x] + [f"{v:e}" for v in x * 1e-7]
    texts += [f"-{t}" for t in texts[:20_000]]
    data = ("\n".join(t if not t.startswith(".") else "0" + t for t in texts) + "\n").encode()
    by_pandas = pd.read_csv(io.BytesIO(data), header=None, names=["v"], dtype={"v": np.float64},
                            engine="c", quoting=3)["v"].to_numpy()
    by_arrow = pa_csv.read_csv(pa.BufferReader(data),
                               read_options=pa_csv.ReadOptions(column_names=["v"]),
                               convert_options=pa_csv.ConvertOptions(
                                   column_types={"v": pa.float64()})).column(0).to_numpy()
    assert np.array_equal(by_pandas.view(np.int64), by_arrow.view(np.int64))


def test_count_newlines_is_bytes_count():
    for data in (b"", b"\n", b"a,b\r\nc\n", b"x" * 10_000 + b"\n" * 7 + b"y"):
        assert count_newlines(data) == data.count(b"\n")


# --- runner defaults ------------------------------------------------------------------

@pytest.mark.parametrize("given, added", [
    ([], ["--runner", "FnApiRunner", "--direct_num_workers", "N"]),
    (["--runner", "FnApiRunner"], ["--direct_num_workers", "N"]),
    (["--direct_num_workers", "1"], ["--runner", "FnApiRunner"]),
    (["--direct_running_mode=multi_threading"], ["--runner", "FnApiRunner"]),
    (["--runner=DirectRunner"], []),
    (["--runner", "DataflowRunner", "--project", "p"], []),
])
def test_local_runner_defaults_to_one_worker_per_core(given, added):
    _, beam_args = options.parse_args(["--output", "o", "--train", "t.csv", *given])
    workers = str(options.default_local_workers())
    expected = [workers if a == "N" else a for a in added]
    assert sorted(beam_args) == sorted(given + expected)
    assert 1 <= int(workers) <= options.MAX_DEFAULT_LOCAL_WORKERS


@pytest.fixture(scope="module")
def small_csvs(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    lines = csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=6)))
    lines[30] = _set(lines[30], 7, "abc")
    write_lines(root / "train.csv", lines, "\r\n")
    write_lines(root / "test.csv", csv_lines(loft_frame(crews=(1, 2), seconds=6)))
    return root


def _record_digests(out: str) -> dict:
    manifest = read_manifest(out)
    return {split: collections.Counter(hashlib.md5(r).hexdigest()
                                       for r in read_split_bytes(out, split, manifest))
            for split in manifest["splits"]}


def _comparable(manifest: dict) -> dict:
    manifest = {k: v for k, v in manifest.items() if k not in ("created", "input_fingerprints")}
    manifest["options"] = {k: v for k, v in manifest["options"].items() if k != "output"}
    manifest["splits"] = {s: {k: v for k, v in m.items() if k != "shards"}
                          for s, m in manifest["splits"].items()}
    return manifest


def test_two_workers_write_what_one_writes(small_csvs, tmp_path):
    inputs = ["--train", str(small_csvs / "train.csv"), "--test", str(small_csvs / "test.csv"),
              "--max-bad-fraction", "0.01", *SMALL]
    one = run([*inputs, "--output", str(tmp_path / "one"), "--direct_num_workers", "1"])
    two = run([*inputs, "--output", str(tmp_path / "two"), "--direct_num_workers", "2"])
    assert _comparable(one) == _comparable(two)
    assert _record_digests(str(tmp_path / "one")) == _record_digests(str(tmp_path / "two"))
    assert one["rows"]["quarantined"] == 1


def test_a_failing_step_is_still_one_line_with_the_default_workers(small_csvs, tmp_path, capsys):
    """A worker's exception keeps its type (in-process workers): one line, no traceback,
    and no Beam warning about the number of workers."""
    data = (small_csvs / "train.csv").read_bytes()
    (tmp_path / "train-a.csv").write_bytes(data)
    (tmp_path / "train-b.csv.gz").write_bytes(gzip.compress(data)[:len(data) // 8])
    assert main(["--train", str(tmp_path / "train-*"), "--output", str(tmp_path / "o"),
                 *SMALL]) == 1
    err = capsys.readouterr().err
    assert f"beam_preprocess: error: {tmp_path / 'train-b.csv.gz'}: gzip data ends" in err
    assert "Traceback" not in err and "direct_num_workers" not in err
