"""--overwrite deletes only what the same command wrote: an earlier output of
beam_preprocess (manifest, shards, quarantine, Beam's temporary files) or of a tuning
search (search.json, trials, logs, report).  An output that holds an input of the
job, or anything else, is refused in one line before anything is touched."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from beam_preprocess.__main__ import main as beam_main
from beam_testdata import csv_lines, loft_frame, text_sorted, train_frame, write_lines
from tuning.task import main as tuning_main

SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1"]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _train_csv(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lines(path, csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=3))))
    return path


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("output", [".", ".."], ids=["the input's folder", "its parent"])
def test_overwrite_refuses_an_output_that_holds_the_input(tmp_path, capsys, output):
    train = _train_csv(tmp_path / "data" / "train.csv")
    (tmp_path / "data" / "notes.txt").write_text("the user's own file")
    before = _tree(tmp_path)
    code = beam_main(["--train", str(train), "--output", str(train.parent / output),
                      "--overwrite", *SMALL])
    assert code == 1
    _one_line_error(capsys, "holds this job's input", str(train))
    assert _tree(tmp_path) == before


def test_overwrite_refuses_an_output_that_holds_the_stats_it_reads(tmp_path, capsys):
    out = tmp_path / "out"
    assert beam_main(["--train", str(_train_csv(tmp_path / "train.csv")), "--output",
                      str(out), *SMALL]) == 0
    write_lines(tmp_path / "test.csv", csv_lines(loft_frame(crews=(1,), seconds=3)))
    capsys.readouterr()
    before = _tree(out)
    code = beam_main(["--test", str(tmp_path / "test.csv"), "--stats",
                      str(out / "manifest.json"), "--output", str(out), "--overwrite", *SMALL])
    assert code == 1
    _one_line_error(capsys, "holds this job's input", "manifest.json")
    assert _tree(out) == before


def test_overwrite_replaces_an_earlier_output_but_not_one_holding_other_files(tmp_path,
                                                                               capsys):
    train, out = _train_csv(tmp_path / "train.csv"), tmp_path / "out"
    assert beam_main(["--train", str(train), "--output", str(out), "--seed", "1", *SMALL]) == 0
    (out / "train" / "my-notes.txt").write_text("not a beam_preprocess output")
    capsys.readouterr()
    before = _tree(out)
    code = beam_main(["--train", str(train), "--output", str(out), "--seed", "2",
                      "--overwrite", *SMALL])
    assert code == 1
    _one_line_error(capsys, "not a beam_preprocess output", "my-notes.txt", "nothing was deleted")
    assert _tree(out) == before
    os.remove(out / "train" / "my-notes.txt")
    assert beam_main(["--train", str(train), "--output", str(out), "--seed", "2",
                      "--overwrite", *SMALL]) == 0
    assert json.loads((out / "manifest.json").read_text())["options"]["seed"] == 2


SEARCH = ["--algorithm", "random", "--max-trials", "1", "--epochs", "1",
          "--steps-per-epoch", "2", "--overwrite"]


def test_tuning_overwrite_refuses_the_data_directory_and_foreign_files(
        tmp_path, capsys, trainer_data_dir):
    data = Path(trainer_data_dir)
    before = _tree(data)
    code = tuning_main(["search", "--data", str(data), "--tuner-dir", str(data), *SEARCH])
    assert code == 2
    _one_line_error(capsys, "holds the search's --data")
    assert _tree(data) == before
    code = tuning_main(["search", "--data", str(data), "--tuner-dir", str(data.parent),
                        *SEARCH])
    assert code == 2
    _one_line_error(capsys, "holds the search's --data")
    tuner_dir = tmp_path / "tuner"
    (tuner_dir / "pilotstate").mkdir(parents=True)
    (tuner_dir / "search.json").write_text("{}")
    (tuner_dir / "thesis.tex").write_text("the user's own file")
    before = _tree(tuner_dir)
    code = tuning_main(["search", "--data", str(data), "--tuner-dir", str(tuner_dir), *SEARCH])
    assert code == 2
    _one_line_error(capsys, "thesis.tex", "which a search does not write", "nothing was deleted")
    assert _tree(tuner_dir) == before
