"""`trainer predict` and `trainer score` slips: an --out that exists or is an input,
a half-written submission, quarantined test ids left out, non-finite probabilities,
and score's all-zero, textual, negative, non-finite and unnormalised rows."""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from beam_preprocess.kaggle_schema import TEST_COLUMNS
from beam_preprocess.quarantine import QUARANTINE_HEADER, BadRow, bad_row_csv_line
from trainer.prediction import output_files, quarantined_rows
from trainer.prediction import predict as predict_module
from trainer.records import spec
from trainer.runs import run_dir
from trainer.shared import paths
from trainer.task import main

PROG = "python -m trainer"


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"{PROG} {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _copy_run(job_dir: str, dest: str, nan_weights: bool = False) -> str:
    """A copy of the job's latest run at `dest` (run.json's paths pointing at the
    copy), optionally with every weight of its model set to NaN."""
    paths = run_dir.find_run(job_dir)
    shutil.copytree(paths.run_dir, dest,
                    ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    info = run_dir.read_json(os.path.join(dest, "run.json"))
    info["paths"] = {**info["paths"], "run_dir": dest,
                     "checkpoints": os.path.join(dest, "checkpoints"),
                     "tensorboard": os.path.join(dest, "tensorboard"),
                     "model": os.path.join(dest, "model")}
    run_dir.write_json(os.path.join(dest, "run.json"), info)
    if nan_weights:
        import keras

        path = os.path.join(dest, "model", "model.keras")
        model = keras.models.load_model(path, compile=False)
        model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
        model.save(path)
    return dest


@pytest.fixture(scope="module")
def plain_submission(trainer_trained_job, trainer_data_dir, tmp_path_factory) -> str:
    """The fixture's submission at --prior none (default stride)."""
    out = str(tmp_path_factory.mktemp("slips") / "plain.csv")
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", out, "--prior", "none"]) == 0
    return out


@pytest.fixture
def data_copy(trainer_data_dir, tmp_path) -> str:
    """A copy of the fixture's data directory (tests may damage it)."""
    dest = str(tmp_path / "data")
    shutil.copytree(trainer_data_dir, dest)
    return dest


# --- 1: --out is never replaced silently, never an input, written whole or not at all


@pytest.mark.parametrize("which", ["out", "plot"])
def test_an_existing_out_or_plot_is_refused_without_overwrite(
        which, trainer_trained_job, trainer_data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "submission.csv"
    existing = out if which == "out" else tmp_path / "submission_session.png"
    existing.write_text("someone else's file\n")
    monkeypatch.setattr(predict_module, "load_run_model", _no_work)
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", str(out)]) == 2
    line = _one_error_line(capsys, "predict")
    assert f"--{which} {existing}" in line and "exists" in line and "--overwrite" in line
    assert existing.read_text() == "someone else's file\n"
    # --overwrite replaces only what predict wrote: this file is no submission or plot.
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", str(out), "--overwrite"]) == 2
    line = _one_error_line(capsys, "predict")
    assert f"--{which} {existing}" in line and "not replaced" in line
    assert existing.read_text() == "someone else's file\n"


def _no_work(*_args, **_kwargs):
    raise AssertionError("the prediction work started before the outputs were checked")


def test_overwrite_replaces_an_earlier_submission_and_its_plot(
        plain_submission, trainer_trained_job, trainer_data_dir, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    shutil.copy(plain_submission, out)
    shutil.copy(os.path.splitext(plain_submission)[0] + "_session.png",
                tmp_path / "submission_session.png")
    before = out.read_bytes()
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", str(out), "--prior", "train", "--balance", "0", "--overwrite"]) == 0
    assert out.read_bytes() != before
    assert sorted(os.listdir(tmp_path)) == ["submission.csv", "submission_session.png"]


@pytest.mark.parametrize("which", ["manifest", "test shard", "labels", "run.json",
                                   "through a symlink"])
def test_out_may_never_be_an_input(which, trainer_trained_job, data_copy, tmp_path, capsys,
                                   monkeypatch):
    run = _copy_run(trainer_trained_job, str(tmp_path / "run"))
    labels = os.path.join(data_copy, "test_labels.csv")
    manifest = os.path.join(data_copy, "manifest.json")
    shard = os.path.join(data_copy, "test", sorted(os.listdir(os.path.join(data_copy, "test")))[0])
    os.symlink(data_copy, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    out, victim = {"manifest": (manifest, manifest), "test shard": (shard, shard),
                   "labels": (labels, labels), "run.json": (os.path.join(run, "run.json"),) * 2,
                   "through a symlink": ("link/../link/manifest.json", manifest)}[which]
    before = open(victim, "rb").read()
    args = ["predict", "--run", run, "--data", data_copy, "--out", out, "--labels", labels,
            "--plot", str(tmp_path / "plot.png")]
    assert main(args) == 2
    assert f"--out {out}" in _one_error_line(capsys, "predict")
    assert main([*args, "--overwrite"]) == 2  # not even with --overwrite
    line = _one_error_line(capsys, "predict")
    assert f"--out {out}" in line and "input" in line and "--overwrite" not in line
    assert open(victim, "rb").read() == before


def test_paths_are_compared_resolved_and_gs_paths_normalised(tmp_path):
    same = paths.same_file
    assert same("gs://bucket/data//manifest.json", "gs://bucket/data/./manifest.json")
    assert same("gs://bucket/a/../data/manifest.json", "gs://bucket/data/manifest.json")
    assert not same("gs://bucket/data/manifest.json", "gs://other/data/manifest.json")
    os.symlink(tmp_path, tmp_path / "link")
    assert same(str(tmp_path / "link" / "x.csv"), str(tmp_path / "x.csv"))
    assert not same(str(tmp_path / "x.csv"), "gs://bucket/x.csv")


def test_out_in_a_missing_folder_is_refused_before_the_work(
        trainer_trained_job, trainer_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(predict_module, "load_run_model", _no_work)
    out = tmp_path / "missing" / "submission.csv"
    assert main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
                 "--out", str(out)]) == 2
    line = _one_error_line(capsys, "predict")
    assert f"--out {out}" in line and f"{tmp_path / 'missing'} does not exist" in line
    assert not (tmp_path / "missing").exists()


def test_a_failed_predict_leaves_no_file(trainer_trained_job, trainer_data_dir, tmp_path,
                                         monkeypatch):
    real, calls = predict_module._csv_rows, []

    def fail_on_second_segment(ids, probs):
        calls.append(len(ids))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(ids, probs)

    monkeypatch.setattr(predict_module, "_csv_rows", fail_on_second_segment)
    with pytest.raises(OSError, match="disk full"):
        main(["predict", "--run", trainer_trained_job, "--data", trainer_data_dir,
              "--out", str(tmp_path / "submission.csv"), "--prior", "none"])
    assert os.listdir(tmp_path) == []  # neither half a submission nor a temporary file


def test_a_gs_out_is_written_beside_and_renamed_without_replacing(monkeypatch):
    """gs:// (no emulator reaches tf.io.gfile): the temporary object sits beside the
    target, is renamed without overwrite, and is removed when the rename is refused."""
    calls, objects = [], set()
    monkeypatch.setattr(tf.io.gfile, "exists", lambda path: path in objects)
    monkeypatch.setattr(tf.io.gfile, "remove", lambda path: (calls.append(("remove", path)),
                                                             objects.discard(path)))

    def rename(src, dst, overwrite=False):
        calls.append(("rename", src, dst, overwrite))
        if dst in objects and not overwrite:
            raise tf.errors.AlreadyExistsError(None, None, dst)
        objects.discard(src)
        objects.add(dst)

    monkeypatch.setattr(tf.io.gfile, "rename", rename)
    target = "gs://bucket/subs/submission.csv"
    output_files.write_atomically(target, "--out", False, lambda tmp: objects.add(tmp))
    ((_, tmp, dst, overwrite),) = calls
    assert tmp.startswith("gs://bucket/subs/.submission.csv.") and tmp.endswith(".tmp")
    assert (dst, overwrite, objects) == (target, False, {target})
    calls.clear()
    with pytest.raises(output_files.UserError, match="appeared while predicting"):
        output_files.write_atomically(target, "--out", False, lambda tmp: objects.add(tmp))
    assert objects == {target} and calls[-1][0] == "remove"


# --- 2: quarantined test ids are written (nearest row of their session, else the prior)


TEST_CSV, TRAIN_CSV = "/raw/test.csv", "/raw/train.csv"


def _raw(id_, crew, time, seat, experiment="LOFT", channels=spec.NUM_CHANNELS) -> str:
    return ",".join([str(id_), str(crew), experiment, str(time), str(seat)]
                    + ["0.25"] * channels)


def _first_test_segment(data_dir: str) -> spec.Segment:
    test_dir = os.path.join(data_dir, "test")
    shard = os.path.join(test_dir, sorted(os.listdir(test_dir))[0])
    for record in tf.data.TFRecordDataset(shard, compression_type="GZIP").take(1):
        return spec.decode_segment(record.numpy())


def _quarantine(data_dir: str, rows: list[BadRow]) -> None:
    """Writes rows as beam_preprocess's quarantine file and lists them in the manifest."""
    os.makedirs(os.path.join(data_dir, "quarantine"))
    with open(os.path.join(data_dir, "quarantine", "bad_rows.csv"), "w") as f:
        f.write(QUARANTINE_HEADER + "\n" + "".join(bad_row_csv_line(r) + "\n" for r in rows))
    path = os.path.join(data_dir, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["rows"]["quarantined"] = len(rows)
    manifest["rows"]["in"] += len(rows)
    manifest["quarantine_file"] = "quarantine/bad_rows.csv"
    manifest["input_fingerprints"] = [{"path": TRAIN_CSV, "kind": "train"},
                                      {"path": TEST_CSV, "kind": "test"}]
    with open(path, "w") as f:
        json.dump(manifest, f)


def test_a_raw_test_line_has_the_test_csv_fields():
    assert len(TEST_COLUMNS) == quarantined_rows.TEST_FIELDS


def test_quarantined_test_ids_are_written_once_each(
        plain_submission, trainer_trained_job, data_copy, tmp_path, capsys, caplog):
    seg = _first_test_segment(data_copy)
    row = seg.context_rows + 100
    near, taken = float(seg.time[row]) + 0.3 / spec.SAMPLE_RATE_HZ, int(seg.ids[row])
    crew, seat = seg.crew, seg.seat
    new = int(pd.read_csv(plain_submission)["id"].max()) + 1
    cut = _raw(new + 3, crew, near, seat)[:40]  # a last line cut short: its keys are whole
    _quarantine(data_copy, [
        BadRow(TEST_CSV, 10, "non-numeric value 'x' in column eeg_fp1", _raw(new, crew, near, seat)),
        BadRow(TEST_CSV, 11, "unknown crew 99", _raw(new + 1, 99, near, seat)),
        BadRow(TEST_CSV, 12, "non-numeric value 'soon' in column time",
               _raw(new + 2, crew, "soon", seat)),
        BadRow(TEST_CSV, 13, "suspect: the file's last line has no line end", cut),
        BadRow(TEST_CSV, 20, f"id {taken} repeats line 5", _raw(taken, crew, near, seat)),
        BadRow(TEST_CSV, 21, "missing or non-finite value in column r", _raw(new, crew, 0.0, seat)),
        BadRow(TEST_CSV, 30, "non-numeric value 'x7' in column id", _raw("x7", crew, near, seat)),
        BadRow(TEST_CSV, 31, "24 fields, expected 28",  # its id dropped: crew read as id
               _raw("", crew, near, seat)[1:]),
        BadRow(TEST_CSV, 32, "time 1.0 repeats line 9 in session ...", ""),
        BadRow(TEST_CSV, 40, "empty line", ""),
        BadRow(TRAIN_CSV, 50, "unknown event 'Z'", "1,CA,0.5,0" + ",0.25" * spec.NUM_CHANNELS + ",Z"),
    ])
    capsys.readouterr()
    out = str(tmp_path / "submission.csv")
    assert main(["predict", "--run", trainer_trained_job, "--data", data_copy, "--out", out,
                 "--prior", "none"]) == 0
    summary = json.loads(capsys.readouterr().out)
    plain = pd.read_csv(plain_submission).set_index("id")
    written = pd.read_csv(out)
    assert written["id"].is_unique
    assert set(written["id"]) == set(plain.index) | {new, new + 1, new + 2, new + 3}
    written = written.set_index("id")
    np.testing.assert_allclose(written.loc[plain.index].to_numpy(), plain.to_numpy(), atol=1e-6)
    # The nearest row in time of the same session; the id already predicted keeps its own.
    np.testing.assert_allclose(written.loc[new].to_numpy(), plain.loc[taken].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(written.loc[new + 3].to_numpy(), plain.loc[taken].to_numpy(),
                               atol=1e-6)
    training_prior = run_dir.read_json(
        run_dir.find_run(trainer_trained_job).file("run.json"))["training_prior"]
    for no_neighbour in (new + 1, new + 2):  # no such session / no readable time: the prior
        np.testing.assert_allclose(written.loc[no_neighbour].to_numpy(), training_prior, atol=1e-6)
    assert summary["rows"] == len(plain) + 4
    assert summary["quarantined_test_rows"] == {
        "filled": 4, "filled_with_prior": 2, "already_written": 2, "without_id": 3,
        "blank_lines": 1}
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"{new}" in warnings and "nearest" in warnings
    for line in (30, 31, 32):
        assert f"{TEST_CSV}:{line}" in warnings


def test_a_missing_quarantine_file_is_named(trainer_trained_job, data_copy, tmp_path, capsys,
                                            monkeypatch):
    _quarantine(data_copy, [BadRow(TEST_CSV, 10, "unknown crew 99", _raw(7, 99, 1.0, 0))])
    os.remove(os.path.join(data_copy, "quarantine", "bad_rows.csv"))
    monkeypatch.setattr(predict_module, "load_run_model", _no_work)
    assert main(["predict", "--run", trainer_trained_job, "--data", data_copy,
                 "--out", str(tmp_path / "s.csv")]) == 2
    line = _one_error_line(capsys, "predict")
    assert os.path.join(data_copy, "quarantine", "bad_rows.csv") in line
    assert "1 quarantined rows" in line


# --- 3: never a non-finite probability


def test_a_run_with_nan_weights_fails_naming_the_run(trainer_trained_job, trainer_data_dir,
                                                      tmp_path, capsys):
    run = _copy_run(trainer_trained_job, str(tmp_path / "nan-run"), nan_weights=True)
    out = tmp_path / "out" / "submission.csv"
    out.parent.mkdir()
    assert main(["predict", "--run", run, "--data", trainer_data_dir, "--out", str(out),
                 "--stride", "256"]) == 2
    line = _one_error_line(capsys, "predict")
    assert run in line and "NaN" in line
    assert os.listdir(out.parent) == []


# --- 4: score refuses what is not a probability, says what it rescales


LABELS = "id,event\n0,A\n1,B\n2,C\n3,D\n"


def _score(tmp_path, capsys, submission: str) -> tuple[int, str, str]:
    (tmp_path / "labels.csv").write_text(LABELS)
    (tmp_path / "sub.csv").write_text(submission)
    capsys.readouterr()
    code = main(["score", "--submission", str(tmp_path / "sub.csv"),
                 "--labels", str(tmp_path / "labels.csv")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


GOOD = ["0,0.7,0.1,0.1,0.1", "1,0.1,0.7,0.1,0.1", "2,0.1,0.1,0.7,0.1", "3,0.1,0.1,0.1,0.7"]


@pytest.mark.parametrize("bad_row, problem", [
    ("2,0,0,0,0", "all zero"),
    ("2,0.1,abc,0.7,0.2", "'abc'"),
    ("2,0.1,-0.1,0.7,0.3", "negative"),
    ("2,0.1,nan,0.7,0.2", "not a number"),
    ("2,0.1,,0.7,0.2", "not a number"),
    ("2,0.1,inf,0.7,0.2", "infinite"),
])
def test_score_refuses_a_row_that_is_no_probability_naming_file_and_line(
        bad_row, problem, tmp_path, capsys):
    # header = line 1, a blank line 3 (skipped by the reader, counted here), row id 2 on 5
    text = "id,A,B,C,D\n" + GOOD[0] + "\n\n" + GOOD[1] + "\n" + bad_row + "\n" + GOOD[3] + "\n"
    code, out, err = _score(tmp_path, capsys, text)
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG} score: error: "), err
    assert f"{tmp_path / 'sub.csv'}:5" in lines[0] and problem in lines[0]


def test_score_rescales_as_kaggle_does_and_says_how_many_rows(tmp_path, capsys):
    rows = [GOOD[0], "1,0.2,0.2,0.2,0.2", "2,1,0,0,0", GOOD[3]]
    code, out, err = _score(tmp_path, capsys, "id,A,B,C,D\n" + "\n".join(rows) + "\n")
    assert code == 0
    metrics = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert metrics["rescaled_rows"] == 1  # row 2 sums to 0.8; row 3 is only clipped
    assert "1 row" in err and "rescaled" in err and str(tmp_path / "sub.csv") in err
    eps = 1e-15
    row3 = np.clip([1.0, 0, 0, 0], eps, 1 - eps)
    expected = [-math.log(0.7), -math.log(0.25), -math.log(row3[2] / row3.sum()), -math.log(0.7)]
    assert metrics["log_loss"] == pytest.approx(np.mean(expected), rel=1e-9)
