"""One writer per output directory (trainer/shared/output_claim.py): a second beam_preprocess,
`trainer train` or `tuning search` chief fails at once naming the holder, a dead
holder's claim is taken over, the claim is released on success and on failure, on a
local disk and on gs:// (the emulator, which checks ifGenerationMatch as GCS does).

A holder is a real process that takes the claim, says so, and holds it until its
standard input closes (or it is killed)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beam_preprocess.__main__ import main as beam_main, run as beam_run
from beam_testdata import csv_lines, text_sorted, train_frame, write_lines
from trainer.data.datasets import DataError
from trainer.shared.output_claim import (CLAIM_NAME, ClaimLostError, Holder, OutputClaim,
                                         OutputClaimedError)
from trainer.task import main as trainer_main
from trainer_fixtures import TINY_TRAIN_ARGS
from tuning.task import main as tuning_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1"]
HOLD = """
import sys
from trainer.shared.output_claim import OutputClaim
try:
    with OutputClaim(sys.argv[1], "holder test job"):
        print("held", flush=True)
        sys.stdin.readline()
except Exception as err:
    print(f"refused: {err}", flush=True)
    sys.exit(1)
"""
LOG = "trainer.shared.output_claim"


def _hold(directory: str) -> subprocess.Popen:
    """A process holding `directory`'s claim (it answers "held") or refused it."""
    return subprocess.Popen([sys.executable, "-c", HOLD, directory], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO}, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _holding(directory: str) -> subprocess.Popen:
    holder = _hold(directory)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def _kill(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)   # reaped: a zombie would still count as running


def _assert_names(message: str, holder: subprocess.Popen) -> None:
    assert "being written by another job: holder test job" in message
    assert f"on host {socket.gethostname()}, pid {holder.pid}, started " in message
    assert len(message.strip().splitlines()) <= 2


def _train_csv(root: Path) -> str:
    path = root / "train.csv"
    write_lines(path, csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=3))))
    return str(path)


def test_second_beam_job_fails_at_once_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "out"
    holder = _holding(str(out))
    (out / "part-of-the-holders-output").write_text("x")
    started = time.monotonic()
    code = beam_main(["--train", _train_csv(tmp_path), "--output", str(out), "--overwrite",
                      *SMALL])
    seconds = time.monotonic() - started
    assert code == 1 and seconds < 5, seconds
    _assert_names(capsys.readouterr().err, holder)
    # --overwrite deleted nothing of the holder's output, and its claim is intact.
    assert sorted(p.name for p in out.iterdir()) == [CLAIM_NAME, "part-of-the-holders-output"]
    assert Holder.parse((out / CLAIM_NAME).read_bytes()).pid == holder.pid
    _release(holder)
    assert not (out / CLAIM_NAME).exists()


def test_second_trainer_fails_at_once_naming_the_holder(tmp_path, capsys, trainer_data_dir):
    job_dir = tmp_path / "job"
    holder = _holding(str(job_dir))
    code = trainer_main(["train", "--data", trainer_data_dir, "--job-dir", str(job_dir),
                         *TINY_TRAIN_ARGS])
    assert code == 1
    _assert_names(capsys.readouterr().err, holder)
    assert [p.name for p in job_dir.iterdir()] == [CLAIM_NAME]   # no run was started
    _release(holder)


def test_second_tuning_chief_fails_at_once_naming_the_holder(tmp_path, capsys,
                                                             trainer_data_dir):
    tuner_dir = tmp_path / "tuner"
    holder = _holding(str(tuner_dir))
    (tuner_dir / "search.json").write_text("{}")   # stands for the holder's search
    code = tuning_main(["search", "--data", trainer_data_dir, "--tuner-dir", str(tuner_dir),
                        "--algorithm", "random", "--max-trials", "1", "--overwrite",
                        "--epochs", "1", "--steps-per-epoch", "2"])
    assert code == 1
    _assert_names(capsys.readouterr().err, holder)
    assert (tuner_dir / "search.json").read_text() == "{}"   # --overwrite wiped nothing
    _release(holder)


def test_a_dead_holders_claim_is_taken_over_and_released_on_success(tmp_path, caplog):
    out = tmp_path / "out"
    holder = _holding(str(out))
    _kill(holder)
    assert Holder.parse((out / CLAIM_NAME).read_bytes()).pid == holder.pid
    with caplog.at_level(logging.INFO, logger=LOG):
        manifest = beam_run(["--train", _train_csv(tmp_path), "--output", str(out), *SMALL])
    assert manifest["rows"]["written"] > 0
    took_over = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert len(took_over) == 1 and f"pid {holder.pid} is gone" in took_over[0]
    assert any("claimed for python -m beam_preprocess" in r.getMessage()
               for r in caplog.records)
    assert not (out / CLAIM_NAME).exists()


def test_the_claim_is_released_when_the_job_fails(tmp_path, caplog):
    job_dir = tmp_path / "job"
    with caplog.at_level(logging.INFO, logger=LOG):
        try:
            code = trainer_main(["train", "--data", str(tmp_path / "no-such-data"),
                                 "--job-dir", str(job_dir), *TINY_TRAIN_ARGS])
        except DataError:   # (a one-line error and a non-zero code once the CLI reports it)
            code = None
    assert code != 0
    assert any("claimed for python -m trainer train" in r.getMessage() for r in caplog.records)
    assert not (job_dir / CLAIM_NAME).exists()
    with pytest.raises(ZeroDivisionError), OutputClaim(str(job_dir), "failing job") as claim:
        assert os.path.exists(claim.path)
        1 / 0
    assert not (job_dir / CLAIM_NAME).exists()


def _claim_of_another_host(directory: Path, silent_seconds: float) -> Holder:
    beat = time.time() - silent_seconds
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(beat))
    holder = Holder(job="python -m trainer train", claim_id="elsewhere01", host="other-host",
                    pid=os.getpid(), pid_namespace="pid:[1]", started=stamp, heartbeat=stamp)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CLAIM_NAME).write_bytes(holder.to_bytes())
    return holder


def test_another_hosts_claim_is_live_until_its_heartbeat_is_stale(tmp_path, caplog):
    _claim_of_another_host(tmp_path, silent_seconds=60)
    with pytest.raises(OutputClaimedError, match="on host other-host, pid"):
        with OutputClaim(str(tmp_path), "second job", stale_after_seconds=180):
            pass
    _claim_of_another_host(tmp_path, silent_seconds=600)
    with caplog.at_level(logging.WARNING, logger=LOG):
        with OutputClaim(str(tmp_path), "second job", stale_after_seconds=180) as claim:
            assert Holder.parse((tmp_path / CLAIM_NAME).read_bytes()).job == "second job"
    assert "its heartbeat is over 180 s old" in caplog.text and "claim elsewhere01" in caplog.text
    assert not os.path.exists(claim.path)


def test_the_heartbeat_keeps_a_claim_fresh_and_a_holder_learns_it_lost_it(tmp_path):
    with OutputClaim(str(tmp_path), "beating job", heartbeat_seconds=0.05) as claim:
        first = Holder.parse(Path(claim.path).read_bytes()).heartbeat
        time.sleep(0.3)
        assert Holder.parse(Path(claim.path).read_bytes()).heartbeat > first
    # A holder whose heartbeat stalls past the stale time loses its claim to the next
    # job, and fails at the end rather than report an output two jobs wrote.
    with contextlib.ExitStack() as thief, pytest.raises(ClaimLostError,
                                                        match="taken over by thief"):
        with OutputClaim(str(tmp_path), "stalled job", heartbeat_seconds=3600):
            time.sleep(0.2)
            thief.enter_context(OutputClaim(str(tmp_path), "thief", stale_after_seconds=0.1))


@pytest.mark.parametrize("where", ["local", "gs"])
def test_of_racing_claimants_exactly_one_wins(where, tmp_path, request):
    directory = (request.getfixturevalue("gcs_emulator").url("race") if where == "gs"
                 else str(tmp_path / "race"))
    claimants = [_hold(directory) for _ in range(4)]
    answers = [c.stdout.readline().strip() for c in claimants]
    assert answers.count("held") == 1, answers
    winner = claimants[answers.index("held")]
    for claimant, answer in zip(claimants, answers):
        if claimant is not winner:
            assert claimant.wait(timeout=30) == 1
            _assert_names(answer.removeprefix("refused: "), winner)
    _release(winner)


def test_gs_output_second_writer_fails_and_a_dead_claim_is_taken_over(gcs_emulator, tmp_path):
    from google.cloud import storage

    out = gcs_emulator.url("claimed/out")
    blob = storage.Client().bucket(gcs_emulator.bucket).blob(f"claimed/out/{CLAIM_NAME}")
    holder = _holding(out)
    assert json.loads(blob.download_as_bytes())["pid"] == holder.pid
    with pytest.raises(OutputClaimedError) as refused:
        beam_run(["--train", _train_csv(tmp_path), "--output", out, *SMALL])
    _assert_names(str(refused.value), holder)
    _release(holder)
    assert not blob.exists()   # released on success
    holder = _holding(out)
    _kill(holder)
    with OutputClaim(out, "next job") as claim:
        assert dataclasses.asdict(Holder.parse(blob.download_as_bytes()))["job"] == "next job"
        assert claim.path == f"{out}/{CLAIM_NAME}"
    assert not blob.exists()


@pytest.mark.slow
def test_two_real_beam_jobs_on_one_output_one_fails_and_the_output_is_the_others(tmp_path):
    """The reported case: a second job with --overwrite started while the first writes."""
    out = tmp_path / "out"
    write_lines(tmp_path / "train.csv",
                csv_lines(text_sorted(train_frame(crews=(1, 2, 3), seconds=20))))
    command = [sys.executable, "-m", "beam_preprocess", "--train", str(tmp_path / "train.csv"),
               "--output", str(out), "--overwrite", *SMALL]
    env = {**os.environ, "PYTHONPATH": REPO}
    first = subprocess.Popen(command + ["--seed", "1"], env=env, cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / CLAIM_NAME).exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = subprocess.run(command + ["--seed", "2"], env=env, cwd=REPO, text=True,
                            capture_output=True, timeout=120)
    assert second.returncode == 1, second.stderr
    assert f"pid {first.pid}, started " in second.stderr
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert json.loads((out / "manifest.json").read_text())["options"]["seed"] == 1
    assert not (out / CLAIM_NAME).exists()


# A holder that was stopped long enough to lose its claim must not touch its successor's
# output when it resumes: it confirms the claim before every destructive or committing
# step, in its own process (OutputClaim.confirm) and on Beam's workers (ClaimTicket).

def _taken_over(directory: Path) -> contextlib.AbstractContextManager:
    """The next job's claim on `directory`, taken over from a holder that looks stalled."""
    return OutputClaim(str(directory), "successor", stale_after_seconds=0.05)


def test_confirm_passes_while_held_and_fails_once_taken_over(tmp_path):
    with pytest.raises(ClaimLostError, match="while it ran"), OutputClaim(
            str(tmp_path), "stalled job", heartbeat_seconds=3600) as claim:
        claim.confirm("writing the manifest")
        claim.ticket.confirm("writing the manifest")
        time.sleep(0.1)
        with _taken_over(tmp_path):
            for confirm in (claim.ticket.confirm, claim.confirm):
                with pytest.raises(ClaimLostError, match="taken over by successor .*stops "
                                   "before writing the manifest"):
                    confirm("writing the manifest")


def test_a_claimed_sink_moves_nothing_into_place_once_the_claim_is_lost(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    from beam_preprocess.claimed_sinks import ClaimedTextSink

    def write(directory: Path, ticket) -> None:
        with TestPipeline() as p:
            _ = (p | beam.Create(["a", "b"])
                 | beam.io.Write(ClaimedTextSink(ticket, str(directory / "part"),
                                                 shard_name_template="")))

    with OutputClaim(str(tmp_path / "held"), "job") as claim:
        write(tmp_path / "held", claim.ticket)
    assert (tmp_path / "held" / "part").read_text().split() == ["a", "b"]
    with pytest.raises(ClaimLostError, match="taken over by successor .*before moving"):
        with OutputClaim(str(tmp_path / "lost"), "job", heartbeat_seconds=3600) as claim:
            time.sleep(0.1)
            with _taken_over(tmp_path / "lost"):
                write(tmp_path / "lost", claim.ticket)
    assert not (tmp_path / "lost" / "part").exists()


def test_a_beam_job_that_lost_its_claim_writes_no_shard_and_no_manifest(tmp_path, capsys):
    from beam_preprocess.__main__ import build
    from beam_preprocess.options import parse_args

    out = tmp_path / "out"
    config, beam_args = parse_args(["--train", _train_csv(tmp_path), "--output", str(out),
                                    *SMALL])
    with pytest.raises(ClaimLostError, match="taken over by successor"), OutputClaim(
            str(out), "python -m beam_preprocess", heartbeat_seconds=3600) as claim:
        pipeline = build(config, beam_args, claim)
        time.sleep(0.1)
        with _taken_over(out):
            pipeline.run().wait_until_finish()
    committed = [p.relative_to(out).as_posix() for p in out.rglob("*")
                 if p.is_file() and "beam-temp-" not in p.as_posix()]   # (Beam's, left)
    assert committed == [], committed


def test_a_stopped_beam_job_resumes_and_leaves_its_successors_output_alone(tmp_path):
    """The reported case: a job stopped past the stale time, its claim taken over and the
    successor's output finished; resumed, it deleted that output and wrote its own."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "beam_preprocess", "--train", _train_csv(tmp_path),
               "--output", str(out), "--overwrite", *SMALL]
    job = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": REPO}, cwd=REPO,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / CLAIM_NAME).exists():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.01)
    job.send_signal(signal.SIGSTOP)
    time.sleep(0.1)
    with _taken_over(out):
        (out / "manifest.json").write_text('{"written by": "successor"}')
        job.send_signal(signal.SIGCONT)
        _, err = job.communicate(timeout=120)
    assert job.returncode == 1, err
    assert "taken over by successor" in err and len(err.strip().splitlines()) <= 2, err
    assert json.loads((out / "manifest.json").read_text()) == {"written by": "successor"}


def test_a_trainer_that_lost_its_claim_saves_and_exports_nothing(tmp_path, trainer_data_dir):
    from trainer.config import TrainConfig
    from trainer.training.loop import train

    job_dir = tmp_path / "job"
    config = TrainConfig(lstm_units=(16,), frame=32, hop=16, epochs=1, steps_per_epoch=4,
                         global_batch_size=32)
    with pytest.raises(ClaimLostError, match="stops before saving"), OutputClaim(
            str(job_dir), "python -m trainer train", heartbeat_seconds=3600) as claim:
        time.sleep(0.1)
        with _taken_over(job_dir):
            train(config, trainer_data_dir, str(job_dir), claim)
    assert not list(job_dir.glob("runs/*/checkpoints/*")) and not (job_dir / "LATEST").exists()


def test_a_tuning_chief_that_lost_its_claim_deletes_nothing(tmp_path, trainer_data_dir):
    from tuning.search import search
    from tuning.settings import SearchSettings
    from tuning.space import SearchSpace
    from trainer.config import TrainConfig

    tuner_dir = tmp_path / "tuner"
    tuner_dir.mkdir()
    (tuner_dir / "search.json").write_text("{}")   # stands for the successor's search
    settings = SearchSettings(data_dir=trainer_data_dir, algorithm="random", max_trials=1,
                              hyperband_factor=3, space=SearchSpace(),
                              base=TrainConfig(epochs=1, steps_per_epoch=2))
    with pytest.raises(ClaimLostError, match="before deleting the earlier search"), OutputClaim(
            str(tuner_dir), "python -m tuning search", heartbeat_seconds=3600) as claim:
        time.sleep(0.1)
        with _taken_over(tuner_dir):
            search(settings, str(tuner_dir), claim, overwrite=True)
    assert (tuner_dir / "search.json").read_text() == "{}"


SECOND_JOB = """
import sys
from {module} import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("apache_beam", "tensorflow", "keras_tuner") if m in sys.modules)
print(code, ",".join(heavy) or "none")
"""


@pytest.mark.parametrize("module, argv", [
    ("beam_preprocess.__main__", ["--train", "{csv}", "--output", "{out}", *SMALL]),
    ("trainer.task", ["train", "--data", "{data}", "--job-dir", "{out}"]),
    ("tuning.task", ["search", "--data", "{data}", "--tuner-dir", "{out}"]),
])
def test_a_second_job_is_refused_before_beam_or_tensorflow_is_imported(
        module, argv, tmp_path, trainer_data_dir):
    out = tmp_path / "out"
    holder = _holding(str(out))
    values = {"csv": _train_csv(tmp_path), "out": str(out), "data": trainer_data_dir}
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-c", SECOND_JOB.format(module=module),
         *[a.format(**values) for a in argv]],
        env={**os.environ, "PYTHONPATH": REPO}, cwd=REPO, text=True, capture_output=True,
        timeout=60)
    seconds = time.monotonic() - started
    _release(holder)
    assert second.stdout.split() == ["1", "none"], (second.stdout, second.stderr)
    _assert_names(second.stderr, holder)
    assert seconds < 5, seconds
