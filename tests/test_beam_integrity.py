"""No silent loss (issue 11): truncated or corrupt compressed input, a last line
without line end, dead channels, repeated-time rows kept as read; and what the
command prints (--help, progress, no library chatter)."""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard

from beam_preprocess import input_stream, parse, quarantine
from beam_preprocess.__main__ import main
from beam_preprocess.options import DEFAULT_RUNNER, build_parser
from beam_preprocess.output_reader import read_manifest, read_split
from beam_preprocess.quarantine import quarantine_path
from beam_testdata import csv_lines, loft_frame, text_sorted, train_frame, write_lines

REPO = str(Path(__file__).resolve().parents[1])
SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1", "--range-mib", "1", "--chunk-mib", "1"]

COMPRESSORS = {
    ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data),
    ".deflate": zlib.compress,
}


def _train_lines(seed: int = 0) -> list[str]:
    return csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=4, seed=seed)))


# --- 1. truncated or corrupt compressed input ------------------------------------------

@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_checked_reader_reads_whole_streams_and_refuses_cut_ones(tmp_path, suffix):
    data = b"".join(b"line %d,%f\n" % (i, i / 7) for i in range(50_000))
    packed = COMPRESSORS[suffix](data)
    whole, cut = tmp_path / f"whole.csv{suffix}", tmp_path / f"cut.csv{suffix}"
    whole.write_bytes(packed)
    cut.write_bytes(packed[:len(packed) * 9 // 10])
    with input_stream.open_input(str(whole)) as stream:
        assert stream.read() == data
    with pytest.raises(input_stream.CorruptInputError, match="truncated or corrupt") as err:
        with input_stream.open_input(str(cut)) as stream:
            while stream.read(1 << 16):
                pass
    assert str(cut) in str(err.value)


def test_checked_reader_reads_concatenated_gzip_members(tmp_path):
    path = tmp_path / "two.csv.gz"
    path.write_bytes(gzip.compress(b"a,1\nb,2\n") + gzip.compress(b"c,3\n"))
    with input_stream.open_input(str(path)) as stream:
        assert stream.read() == b"a,1\nb,2\nc,3\n"


def _flip_bytes(data: bytes) -> bytes:
    out = bytearray(data)
    for i in range(len(out) // 2, len(out) // 2 + 8):
        out[i] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize("damage", ["cut at 50%", "cut at 90%", "bytes flipped"])
def test_truncated_or_corrupt_gzip_fails_the_job_naming_the_file(tmp_path, capsys, damage):
    packed = gzip.compress(("\n".join(_train_lines()) + "\n").encode())
    if damage == "bytes flipped":
        packed = _flip_bytes(packed)
    else:
        packed = packed[:len(packed) * int(damage[7:9]) // 100]
    path = tmp_path / "train.csv.gz"
    path.write_bytes(packed)
    out = tmp_path / "out"
    assert main(["--train", str(path), "--output", str(out), *SMALL]) == 1
    err = capsys.readouterr().err
    assert f"beam_preprocess: error: {path}: gzip data" in err
    assert "truncated or corrupt" in err and "Traceback" not in err and "zlib.error" not in err
    assert not (out / "manifest.json").exists()


def test_truncated_bz2_fails_the_job(tmp_path, capsys):
    packed = bz2.compress(("\n".join(_train_lines()) + "\n").encode())
    path = tmp_path / "train.csv.bz2"
    path.write_bytes(packed[:len(packed) // 2])
    assert main(["--train", str(path), "--output", str(tmp_path / "out"), *SMALL]) == 1
    assert f"{path}: bzip2 data ends before its end-of-stream marker" in capsys.readouterr().err


# --- 3, 4, 7: one run over a train .gz and a test file ------------------------------------

DUPLICATE_AT = 700        # index of the inserted line in the train file (line 701)
DEAD_R = (2, "SS", 1, 7.25)      # crew, experiment, seat, value of a constant r
DEAD_FZ = (1, "LOFT", 0, 0.0)    # the same for eeg_fz in the test file


@pytest.fixture(scope="module")
def integrity_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    frame = text_sorted(train_frame(crews=(1, 2), seconds=4))
    crew, experiment, seat, value = DEAD_R
    session = (frame.crew == crew) & (frame.experiment == experiment) & (frame.seat == seat)
    frame.loc[session, "r"] = value
    lines = csv_lines(frame)
    fields = lines[100].split(",")
    fields[5] = f"{float(fields[5]):.9f}"  # same number, other text: must stay as read
    duplicate = ",".join(fields)
    lines.insert(DUPLICATE_AT, duplicate)
    with gzip.open(root / "train.csv.gz", "wt", newline="") as f:
        f.write("\n".join(lines) + "\n")

    test = loft_frame(crews=(1,), seconds=4)
    crew, experiment, seat, value = DEAD_FZ
    test.loc[(test.crew == crew) & (test.seat == seat), "eeg_fz"] = value
    test_lines = csv_lines(test)
    test_lines[-1] = _replace_last_field(test_lines[-1], "1461.972")
    cut_line = test_lines[-1][:-2]   # cut inside its last number: 1461.9, still a valid row
    test_lines[-1] = cut_line
    (root / "test.csv").write_bytes("\n".join(test_lines).encode())  # no final line end

    out = root / "out"
    argv = ["--train", str(root / "train.csv.gz"), "--test", str(root / "test.csv"),
            "--output", str(out), *SMALL]
    return {"root": root, "out": str(out), "argv": argv, "train_lines": len(lines),
            "test_lines": len(test_lines), "duplicate": duplicate, "cut_line": cut_line,
            "last_id": int(test["id"].iloc[-1])}


def _replace_last_field(line: str, value: str) -> str:
    return ",".join(line.split(",")[:-1] + [value])


@pytest.fixture(scope="module")
def integrity_result(integrity_run):
    capture = pytest.MonkeyPatch()  # capsys is per test; this run is shared by several
    stderr = io.StringIO()
    capture.setattr(sys, "stderr", stderr)
    try:
        code = main(integrity_run["argv"])
    finally:
        capture.undo()
    assert code == 0, stderr.getvalue()
    out = integrity_run["out"]
    with open(quarantine_path(out)) as f:
        bad = {(Path(r["file"]).name, int(r["line"])): r for r in csv.DictReader(f)}
    return {"manifest": read_manifest(out), "log": stderr.getvalue(), "bad": bad}


def test_rows_in_equal_rows_out_plus_quarantined(integrity_run, integrity_result):
    rows = integrity_result["manifest"]["rows"]
    lines_in = integrity_run["train_lines"] + integrity_run["test_lines"] - 2  # headers
    assert rows["in"] == lines_in
    assert rows["in"] == rows["written"] + rows["quarantined"]
    assert rows["quarantined"] == len(integrity_result["bad"]) == 2


def test_last_line_without_line_end_is_quarantined_as_suspect(integrity_run, integrity_result):
    manifest, path = integrity_result["manifest"], str(integrity_run["root"] / "test.csv")
    line = integrity_run["test_lines"]
    assert manifest["unterminated_files"] == [{"file": path, "line": line}]
    assert manifest["rows"]["suspect"] == 1
    row = integrity_result["bad"][("test.csv", line)]
    assert row["reason"] == parse.NO_FINAL_LINE_END and row["raw"] == integrity_run["cut_line"]
    ids = np.concatenate([s.ids[s.context_rows:] for s in read_split(integrity_run["out"], "test")])
    assert integrity_run["last_id"] not in ids
    assert f"{path}: the last line (line {line}) has no line end" in integrity_result["log"]


def test_dead_channels_are_named_in_manifest_and_log(integrity_run, integrity_result):
    found = {(e["input"], e["crew"], e["experiment"], e["seat"], e["channel"], e["value"])
             for e in integrity_result["manifest"]["dead_channels"]}
    expected = {("train", crew, experiment, seat, "ecg", 0.0)  # beam_testdata's dead ecg
                for crew in (1, 2) for experiment in ("CA", "DA", "SS") for seat in (0, 1)}
    expected.add(("train", DEAD_R[0], DEAD_R[1], DEAD_R[2], "r", DEAD_R[3]))
    expected.add(("test", DEAD_FZ[0], DEAD_FZ[1], DEAD_FZ[2], "eeg_fz", DEAD_FZ[3]))
    assert found == expected
    entry = next(e for e in integrity_result["manifest"]["dead_channels"] if e["channel"] == "r")
    assert entry["files"] == [str(integrity_run["root"] / "train.csv.gz")]
    assert entry["rows"] == 4 * 256
    log = integrity_result["log"]
    assert (f"dead channel r (constant 7.25) in 1 train session(s) of "
            f"{integrity_run['root'] / 'train.csv.gz'}: crew 2 SS seat 1") in log
    assert "dead channel eeg_fz (constant 0) in 1 test session(s)" in log
    assert "dead channel ecg (constant 0) in 12 train session(s)" in log


def test_repeated_time_quarantine_keeps_the_line_as_read(integrity_run, integrity_result):
    row = integrity_result["bad"][("train.csv.gz", DUPLICATE_AT + 1)]
    assert "repeats line 101" in row["reason"]
    assert row["raw"] == integrity_run["duplicate"]


def test_read_lines_across_block_edges(tmp_path, monkeypatch):
    lines = [f"{i},{'x' * (i % 13)}" for i in range(1, 400)]
    path = tmp_path / "f.csv"
    path.write_bytes(("\r\n".join(lines)).encode())  # CRLF, no final line end
    monkeypatch.setattr(quarantine, "_READ_BYTES", 7)
    wanted = [1, 2, 50, 51, 398, 399]
    assert quarantine.read_lines(str(path), wanted) == {n: lines[n - 1] for n in wanted}


# --- 8, 9: what the command prints ---------------------------------------------------------

def _command(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, "-m", "beam_preprocess", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, **kwargs)


def test_local_run_prints_progress_and_no_library_chatter(tmp_path):
    write_lines(tmp_path / "train.csv", _train_lines())
    done = _command(["--train", str(tmp_path / "train.csv"), "--output", str(tmp_path / "out"),
                     *SMALL], timeout=300)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    for chatter in ("I0000", "absl", "cuda", "oneDNN", "INFO"):
        assert chatter not in err, err
    assert "ReadTrain: " in err and "lines parsed" in err
    assert "BuildSegments: 12,288 rows sorted and scaled in" in err
    assert "WriteTrain: " in err and "records encoded" in err
    assert len(err.splitlines()) <= 20, err
    assert done.stdout.startswith("wrote 12288 rows (0 quarantined) in ")


def test_help_names_the_runner_and_every_default_without_importing_beam():
    code = ("import sys, contextlib, io\n"
            "from beam_preprocess.__main__ import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('apache_beam', 'tensorflow') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": REPO}, check=True)
    assert done.stdout.strip() == "[]"
    started = time.monotonic()
    shown = _command(["--help"], check=True).stdout
    assert time.monotonic() - started < 5  # about 0.3 s idle; no Beam or TensorFlow import
    text = " ".join(shown.split())
    assert f"on Beam's {DEFAULT_RUNNER} unless --runner is given" in text
    for action in build_parser()._actions:
        if action.dest == "help":
            continue
        assert action.help, action.option_strings
        assert "default" in action.help.lower() or action.required, action.option_strings
        assert "None" not in action.help, action.option_strings
        for choice in action.choices or ():
            assert choice in action.help, (action.option_strings, choice)
