"""Bad input: clear errors at launch, or quarantined rows with file, line and reason."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from beam_preprocess import kaggle_schema as ks
from beam_preprocess.__main__ import main, run
from beam_preprocess.csv_source import CsvHeaderError
from beam_preprocess.output_reader import read_manifest, read_split
from beam_preprocess.quarantine import quarantine_path
from beam_testdata import csv_lines, loft_frame, text_sorted, train_frame, write_lines

SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1", "--range-mib", "1", "--chunk-mib", "1"]


def _replace_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


# line index in the file (0 = header) -> (how to break it, expected reason part)
BREAKS = {
    5: (lambda l: ",".join(l.split(",")[:20]), "20 fields, expected 28"),
    9: (lambda l: l + ",1.5", "29 fields, expected 28"),
    14: (lambda l: _replace_field(l, 7, "abc"), "non-numeric value 'abc' in column eeg_t4"),
    20: (lambda l: _replace_field(l, 10, "nan"), "non-finite value in column eeg_t3"),
    26: (lambda l: _replace_field(l, 12, "inf"), "non-finite value in column eeg_o1"),
    31: (lambda l: _replace_field(l, 27, "E"), "unknown event 'E'"),
    40: (lambda l: _replace_field(l, 0, "99"), "unknown crew 99"),
    47: (lambda l: _replace_field(l, 1, "XX"), "unknown experiment 'XX'"),
    52: (lambda l: "", "empty line"),
}


# train-c.csv: uncompressed, CRLF line ends, read in two byte ranges (--range-mib 1).
CRLF_BAD_INDEX = 5000  # in the second byte range (checked below)


class BadRun(NamedTuple):
    root: Path
    out: str
    data_lines: int       # data lines of all three input files
    duplicate_of: str     # the line repeated as line 701 of train-a.csv
    crlf_lines: int       # lines of train-c.csv, header included
    bad_rows: int         # rows that must be quarantined


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    lines = csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=4)))
    for index, (breaker, _) in BREAKS.items():
        lines[index] = breaker(lines[index])
    duplicate_of = lines[100]
    lines.insert(700, duplicate_of)  # a time repeated within a session: line 701
    write_lines(root / "train-a.csv", lines)
    gz_lines = csv_lines(text_sorted(train_frame(crews=(3,), seconds=4, seed=5)))
    gz_lines[3] = _replace_field(gz_lines[3], 25, "1.2.3")
    with gzip.open(root / "train-b.csv.gz", "wt", newline="") as f:
        f.write("\r\n".join(gz_lines) + "\r\n")  # CRLF line ends, compressed
    crlf_lines = csv_lines(text_sorted(train_frame(crews=(4,), seconds=4, seed=9)))
    crlf_lines[CRLF_BAD_INDEX] = _replace_field(crlf_lines[CRLF_BAD_INDEX], 4, "x1")
    crlf_lines[-1] = crlf_lines[-1][:30]  # the file ends cut off mid-line, no line end
    assert len("\r\n".join(crlf_lines[:CRLF_BAD_INDEX]).encode()) > 1 << 20
    (root / "train-c.csv").write_bytes("\r\n".join(crlf_lines).encode())
    out = str(root / "out")
    run(["--train", str(root / "train-*"), "--output", out, "--max-bad-fraction", "0.5", *SMALL])
    data_lines = len(lines) + len(gz_lines) + len(crlf_lines) - 3
    return BadRun(root, out, data_lines, duplicate_of, len(crlf_lines), len(BREAKS) + 4)


def _quarantine(out):
    with open(quarantine_path(out)) as f:
        return list(csv.DictReader(f))


def test_every_bad_row_is_quarantined_with_line_and_reason(bad_run):
    rows = _quarantine(bad_run.out)
    found = {(r["file"].rsplit("/", 1)[-1], int(r["line"])): r for r in rows}
    for index, (_, reason) in BREAKS.items():
        row = found[("train-a.csv", index + 1)]
        assert reason in row["reason"], (index, row)
    assert "non-numeric value '1.2.3' in column r" in found[("train-b.csv.gz", 4)]["reason"]
    crlf_bad = found[("train-c.csv", CRLF_BAD_INDEX + 1)]
    assert "non-numeric value 'x1' in column eeg_fp1" in crlf_bad["reason"]
    assert "\r" not in crlf_bad["raw"] and crlf_bad["raw"].split(",")[4] == "x1"
    assert "fields, expected 28" in found[("train-c.csv", bad_run.crlf_lines)]["reason"]
    duplicate = found[("train-a.csv", 701)]
    duplicate_of = bad_run.duplicate_of
    assert "repeats line 101" in duplicate["reason"]
    assert duplicate["raw"] == duplicate_of  # the line as read, not re-formatted
    assert len(rows) == bad_run.bad_rows


def test_accounting_counts_quarantine(bad_run):
    rows = read_manifest(bad_run.out)["rows"]
    assert rows == {"in": bad_run.data_lines, "written": bad_run.data_lines - bad_run.bad_rows,
                    "quarantined": bad_run.bad_rows,
                    "suspect": 1}  # train-c.csv's last line, cut off without line end


def test_gzip_and_crlf_files_are_read_whole(bad_run):
    segments = [s for split in ("train", "valid") for s in read_split(bad_run.out, split)]
    assert {s.crew for s in segments} == {1, 2, 3, 4}
    crlf_rows = sum(s.num_rows - s.context_rows for s in segments if s.crew == 4)
    assert crlf_rows == bad_run.crlf_lines - 1 - 2  # header; the bad and the cut-off line


def test_too_many_bad_rows_fail_the_job(bad_run, tmp_path):
    with pytest.raises(Exception, match="max-bad-fraction"):
        run(["--train", str(bad_run.root / "train-a.csv"), "--output", str(tmp_path / "o"),
             "--max-bad-fraction", "0.0005", *SMALL])


def test_test_only_run_reuses_statistics(bad_run, tmp_path):
    out = bad_run.out
    frame = loft_frame(crews=(2,), seconds=4)
    write_lines(tmp_path / "test.csv", csv_lines(frame))
    test_out = str(tmp_path / "test-out")
    run(["--test", str(tmp_path / "test.csv"), "--stats", f"{out}/manifest.json",
         "--output", test_out, *SMALL])
    manifest = read_manifest(test_out)
    assert manifest["stats"] == read_manifest(out)["stats"]
    assert set(manifest["splits"]) == {"test"}
    ids = np.concatenate([s.ids[s.context_rows:] for s in read_split(test_out, "test")])
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(frame)))


TRAIN_HEADER = ",".join(ks.TRAIN_COLUMNS)
TEST_HEADER = ",".join(ks.TEST_COLUMNS)


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("crew,experiment,seat,time\n", "'time' is at position 4, expected at position 3"),
    ("crew,experiment,time,seat,eeg_fp1\n1,CA,0,0,1\n", "missing column 'eeg_f7'"),
    (",".join(["crew", "experiment", "time", "seat"]) + "\n", "missing column 'eeg_fp1'"),
    (TRAIN_HEADER + ",extra\n", "unexpected column 'extra'"),
])
def test_bad_header_fails_at_once_naming_file_and_column(tmp_path, content, message):
    path = tmp_path / "train.csv"
    path.write_text(content)
    with pytest.raises(CsvHeaderError, match=message) as err:
        run(["--train", str(path), "--output", str(tmp_path / "o")])
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name, opener", [("train.csv", open), ("train.csv.gz", gzip.open)])
def test_header_only_train_file_fails_clearly(tmp_path, capsys, name, opener):
    path = tmp_path / name
    with opener(path, "wt") as f:
        f.write(TRAIN_HEADER + "\n")
    assert main(["--train", str(path), "--output", str(tmp_path / "o")]) == 1
    assert f"--train {path}: header only, no data rows" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    (TRAIN_HEADER + "\n", "missing column 'id'"),
    (TEST_HEADER + "\n", "header only, no data rows"),
])
def test_bad_test_file_fails_at_once(tmp_path, content, message):
    stats = {"method": "standard", "by": "global",
             "center": {"global": [0.0] * len(ks.CHANNELS)},
             "scale": {"global": [1.0] * len(ks.CHANNELS)}}
    (tmp_path / "manifest.json").write_text(json.dumps({"stats": stats}))
    path = tmp_path / "test.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        run(["--test", str(path), "--stats", str(tmp_path / "manifest.json"),
             "--output", str(tmp_path / "o")])
    assert str(path) in str(err.value)
    assert not (tmp_path / "o").exists()
