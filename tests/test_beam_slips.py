"""Slips a user makes, met at once or set aside with a reason: repeated test ids,
option values that cannot work, --holdout-crews without rows, a byte-order mark
before the header (a CSV saved by Excel), and spill folders left by killed runs."""
from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from beam_preprocess import kaggle_schema as ks
from beam_preprocess import sessions, spill
from beam_preprocess.__main__ import main, run
from beam_preprocess.csv_source import read_header
from beam_preprocess.output_reader import read_manifest, read_split
from beam_preprocess.quarantine import quarantine_path
from beam_preprocess.rows import RowBatch, empty_signals, order_key
from beam_testdata import csv_lines, loft_frame, text_sorted, train_frame, write_lines

SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1", "--range-mib", "1", "--chunk-mib", "1"]
BOM = b"\xef\xbb\xbf"


def _with_id(line: str, value: int) -> str:
    return ",".join([str(value)] + line.split(",")[1:])


def _stats_manifest(directory: Path) -> str:
    """A manifest holding only scaling statistics, for test-only runs."""
    stats = {"method": "standard", "by": "global",
             "center": {"global": [0.0] * len(ks.CHANNELS)},
             "scale": {"global": [1.0] * len(ks.CHANNELS)}}
    path = directory / "stats.json"
    path.write_text(json.dumps({"stats": stats}))
    return str(path)


def _quarantine(out: str) -> list[dict]:
    with open(quarantine_path(out)) as f:
        return list(csv.DictReader(f))


def _error_line(capsys) -> str:
    """The one line a failing command prints (no traceback, no second line)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("beam_preprocess: error: "), err
    return lines[0]


# --- 1. repeated test ids ----------------------------------------------------------------

def _batch(ids, file_index, lines) -> RowBatch:
    n = len(ids)
    return RowBatch(crew=np.ones(n, np.int16), experiment=np.full(n, 3, np.uint8),
                    seat=np.zeros(n, np.int8), time=np.arange(n, dtype=np.float64),
                    signals=np.zeros((n, empty_signals().shape[1]), np.float32),
                    order=order_key(file_index, np.asarray(lines)),
                    ids=np.asarray(ids, np.int64))


def test_repeated_ids_keep_the_first_row_in_file_and_line_order():
    later = _batch([7, 8, 7], file_index=1, lines=[2, 3, 9])
    earlier = _batch([8, 5, 7], file_index=0, lines=[40, 41, 42])
    # the parts of one id bucket, in no particular order (as a grouping delivers them)
    table = sessions.repeated_ids([np.stack([later.ids, later.order]),
                                   np.stack([earlier.ids, earlier.order])])
    repeats = sessions.RepeatedIds.from_parts([table])
    kept, bad = repeats.remove(later, ["a.csv", "b.csv"])
    np.testing.assert_array_equal(kept.ids, [])
    assert [(b.file, b.line, b.reason) for b in bad] == [
        ("b.csv", 2, "id 7 repeats line 42 of a.csv"),
        ("b.csv", 3, "id 8 repeats line 40 of a.csv"),
        ("b.csv", 9, "id 7 repeats line 42 of a.csv")]
    kept, bad = repeats.remove(earlier, ["a.csv", "b.csv"])
    assert len(kept) == 3 and bad == []


@pytest.fixture(scope="module")
def id_run(tmp_path_factory):
    """Two test files: ids repeated in another session of the same file, twice, and
    across files (the second a .gz)."""
    root = tmp_path_factory.mktemp("ids")
    a = csv_lines(loft_frame(crews=(1, 2), seconds=4))  # a[i] is line i + 1, id i - 1
    # crew 2 repeats crew 1's id 9 (line 11) in the last row before the time hole
    # (1.5-2 s), which block 0 (of 2 s) also sends to block 1 as context; and once more
    carried = max(i for i, line in enumerate(a) if i and line.split(",")[1] == "2"
                  and float(line.split(",")[3]) < 1.5)
    a[carried] = _with_id(a[carried], 9)
    a[-3] = _with_id(a[-3], 9)
    write_lines(root / "test-a.csv", a)
    frame_b = loft_frame(crews=(3,), seconds=4, seed=4)
    frame_b["id"] += 100_000
    b = csv_lines(frame_b)
    b[30] = _with_id(b[30], 20)                   # repeats line 22 of test-a.csv
    with gzip.open(root / "test-b.csv.gz", "wt", newline="") as f:
        f.write("\n".join(b) + "\n")
    out = str(root / "out")
    run(["--test", str(root / "test-*"), "--stats", _stats_manifest(root), "--output", out,
         *SMALL])
    expected_bad = {
        ("test-a.csv", carried + 1): ("id 9 repeats line 11", a[carried]),
        ("test-a.csv", len(a) - 2): ("id 9 repeats line 11", a[-3]),
        ("test-b.csv.gz", 31): (f"id 20 repeats line 22 of {root / 'test-a.csv'}", b[30]),
    }
    all_ids = [int(line.split(",")[0]) for line in a[1:] + b[1:]]
    return out, expected_bad, all_ids


def test_repeated_test_ids_are_quarantined_with_file_line_and_reason(id_run):
    out, expected_bad, _ = id_run
    found = {(Path(r["file"]).name, int(r["line"])): (r["reason"], r["raw"])
             for r in _quarantine(out)}
    assert found == expected_bad


def test_repeated_test_ids_are_not_written_and_rows_balance(id_run):
    out, expected_bad, all_ids = id_run
    manifest = read_manifest(out)
    ids = np.concatenate([s.ids[s.context_rows:] for s in read_split(out, "test", manifest)])
    assert len(ids) == len(set(ids.tolist()))
    assert set(ids.tolist()) == set(all_ids)
    assert manifest["rows"] == {"in": len(all_ids), "written": len(ids),
                                "quarantined": len(expected_bad), "suspect": 0}


def test_a_repeated_id_is_not_carried_as_context_either(id_run):
    out, _, _ = id_run
    previous = {}
    for segment in read_split(out, "test"):   # in session and time order
        session, n = (segment.crew, segment.seat), segment.context_rows
        if session in previous and n:
            np.testing.assert_array_equal(segment.time[:n], previous[session].time[-n:])
            np.testing.assert_array_equal(segment.ids[:n], previous[session].ids[-n:])
        previous[session] = segment


# --- 2. options that cannot work ---------------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--max-bad-fraction", "2"), ("--max-bad-fraction", "-0.1"), ("--max-bad-fraction", "nan"),
    ("--window", "-5"),
    ("--block-seconds", "nan"), ("--block-seconds", "inf"), ("--block-seconds", "-1"),
    ("--carry-seconds", "nan"), ("--carry-seconds", "inf"), ("--carry-seconds", "-1"),
    ("--valid-fraction", "nan"), ("--valid-fraction", "-0.1"),
    ("--valid-block-seconds", "nan"), ("--valid-block-seconds", "inf"),
    ("--valid-block-seconds", "-1"),
    ("--valid-windows-per-class", "0"), ("--valid-windows-per-class", "-3"),
    ("--num-shards", "-1"),
    ("--range-mib", "0"), ("--range-mib", "-1"), ("--chunk-mib", "0"), ("--chunk-mib", "-2"),
    ("--holdout-crews", "99"),
])
def test_an_option_out_of_range_is_refused_in_one_line_naming_it(tmp_path, capsys, option,
                                                                 value):
    assert main(["--train", "train.csv", "--output", str(tmp_path / "o"),
                 option, value]) == 1
    line = _error_line(capsys)
    assert line.startswith(f"beam_preprocess: error: {option} {value}"), line
    assert not (tmp_path / "o").exists()


def test_an_unknown_holdout_crew_names_the_crews_there_are(capsys):
    assert main(["--train", "train.csv", "--output", "o", "--holdout-crews", "3,99"]) == 1
    assert ", ".join(str(c) for c in ks.CREWS) in _error_line(capsys)


@pytest.mark.parametrize("holdout, message", [
    ("3", "--holdout-crews 3: the training data has no rows of crew 3 (its crews: 1, 2)"),
    ("1,2", "--holdout-crews 1,2 takes every crew of the training data (1, 2)"),
])
def test_holdout_crews_must_leave_both_splits_rows(tmp_path, capsys, holdout, message):
    write_lines(tmp_path / "train.csv",
                csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=2))))
    out = tmp_path / "out"
    assert main(["--train", str(tmp_path / "train.csv"), "--output", str(out),
                 "--holdout-crews", holdout, *SMALL]) == 1
    assert message in _error_line(capsys)
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("*/part-*"))   # no shard was written


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe"])
def test_a_broken_stats_file_names_the_file_and_the_option(tmp_path, capsys, content):
    stats = tmp_path / "manifest.json"
    stats.write_bytes(content.encode("latin-1"))
    (tmp_path / "test.csv").write_text("")
    assert main(["--test", str(tmp_path / "test.csv"), "--stats", str(stats),
                 "--output", str(tmp_path / "out")]) == 1
    assert f"--stats {stats}: " in _error_line(capsys)


# --- 3. a UTF-8 byte-order mark before the header ----------------------------------------

def test_read_header_drops_a_byte_order_mark_but_counts_its_bytes(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(BOM + b"crew,experiment\r\n1,CA\r\n")
    assert read_header(str(path)) == ("crew,experiment", len(BOM) + len(b"crew,experiment\r\n"))


def _bom_inputs(root: Path, bom: bool) -> list[str]:
    """A train CSV read in several byte ranges and a gzip test CSV, with or without BOM."""
    mark = BOM if bom else b""
    train = "\n".join(csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=4)))) + "\n"
    (root / "train.csv").write_bytes(mark + train.encode())
    assert (root / "train.csv").stat().st_size > 2 << 20   # three ranges at --range-mib 1
    test = "\n".join(csv_lines(loft_frame(crews=(1,), seconds=4))) + "\n"
    (root / "test.csv.gz").write_bytes(gzip.compress(mark + test.encode()))
    return ["--train", str(root / "train.csv"), "--test", str(root / "test.csv.gz")]


def test_files_saved_with_a_byte_order_mark_give_the_same_records(tmp_path):
    outputs = {}
    for bom in (False, True):
        root = tmp_path / f"bom-{bom}"
        root.mkdir()
        outputs[bom] = str(root / "out")
        run([*_bom_inputs(root, bom), "--output", outputs[bom], *SMALL])
    plain, marked = read_manifest(outputs[False]), read_manifest(outputs[True])
    assert marked["rows"] == plain["rows"] and marked["rows"]["quarantined"] == 0
    assert marked["splits"].keys() == plain["splits"].keys() == {"train", "valid", "test"}
    for split in plain["splits"]:
        want, got = read_split(outputs[False], split), read_split(outputs[True], split)
        assert len(got) == len(want) > 0
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a.time, b.time)
            np.testing.assert_array_equal(a.signals, b.signals)
            for name in ("labels", "ids"):
                if getattr(a, name) is not None:
                    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# --- 4. spill folders of killed runs -------------------------------------------------------

NO_SUCH_PID = (1 << 22) + 1   # above the largest pid_max Linux allows: never running


def test_a_run_removes_only_the_spill_folders_of_dead_runs_on_this_machine(tmp_path, capsys):
    write_lines(tmp_path / "train.csv",
                csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=2))))
    parent = tmp_path / "spill"
    parent.mkdir()

    def folder(name: str, files: dict) -> Path:
        path = parent / name
        path.mkdir()
        for file, size in files.items():
            (path / file).write_bytes(b"x" * size)
        return path

    spill_files = {"rows-0000010000000002.bin": 3 << 20, "segment-1-0-CA-3-12.5.pkl": 100}
    dead = folder(f"{spill.spill_folder_prefix(NO_SUCH_PID)}k2j4x_9q", spill_files)
    empty_dead = folder(f"{spill.spill_folder_prefix(NO_SUCH_PID)}a1b2c3d4", {})
    kept = [
        folder(f"{spill.spill_folder_prefix(os.getpid())}abcdefgh", spill_files),   # alive: us
        folder(f"{spill.spill_folder_prefix(NO_SUCH_PID)}zzzzzzzz",                  # not ours only
               {**spill_files, "notes.txt": 5}),
        folder(f"pilotstate-spill-other-host-1-{NO_SUCH_PID}-abcdefgh", spill_files),
        folder("pilotstate-spill-qwertyui", spill_files),   # no holder in the name
        folder("results", spill_files),
    ]
    assert main(["--train", str(tmp_path / "train.csv"), "--output", str(tmp_path / "out"),
                 "--spill", "on", "--spill-dir", str(parent), *SMALL]) == 0
    assert sorted(parent.iterdir()) == sorted(kept)   # and this run's own folder is gone
    err = capsys.readouterr().err
    removed = [line for line in err.splitlines() if "spill folder" in line]
    assert len(removed) == 2, err
    assert any(str(dead) in line and "3.0 MiB" in line for line in removed), removed
    assert any(str(empty_dead) in line for line in removed), removed
