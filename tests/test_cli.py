"""What the `trainer`, `tuning` and `infra` command lines tell a person: one-line user
errors, no abbreviated options, fast and complete --help, quiet TensorFlow start-up,
the devices in words, a progress line, and one validation loss per epoch line."""
from __future__ import annotations

import argparse
import io
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from beam_preprocess.__main__ import main as beam_main
from beam_preprocess.options import build_parser as beam_parser
from infra.cli import build_parser as infra_parser
from infra.cli import main as infra_main
from infra.cli import parse_args as infra_parse_args
from trainer.shared.console import without_start_up_notices
from trainer.shared.progress import Progress
from trainer.task import _parser as trainer_parser
from trainer.task import main as trainer_main
from trainer_fixtures import TINY_TRAIN_ARGS
from tuning.task import _parser as tuning_parser
from tuning.task import main as tuning_main

REPO = Path(__file__).resolve().parent.parent
CLOUD_TEMPLATE = REPO / "infra" / "cloud.toml"
# A line of TensorFlow's native (absl) logging: "I0000 00:00:17.3   123 port.cc:153] ...".
NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]", re.MULTILINE)


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- 5: user errors are one line naming the file or option; --verbose shows the traceback


def test_missing_data_directory_is_one_line(tmp_path, capsys):
    args = ["train", "--data", str(tmp_path / "nowhere"), "--job-dir", str(tmp_path / "job")]
    assert trainer_main(args) == 2
    line = _one_error_line(capsys, "python -m trainer train")
    assert f"{tmp_path / 'nowhere' / 'manifest.json'} not found" in line
    assert "--data must be the --output directory of a finished" in line
    with pytest.raises(ValueError, match="manifest.json not found"):
        trainer_main([*args, "--verbose"])


def test_a_truncated_shard_is_named(trainer_data_dir, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(trainer_data_dir, damaged)
    shard = damaged / "train" / "part-00001-of-00003.tfrecord.gz"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert trainer_main(["train", "--data", str(damaged), "--job-dir", str(tmp_path / "job"),
                         *TINY_TRAIN_ARGS]) == 2
    line = _one_error_line(capsys, "python -m trainer train")
    assert f"{shard} cannot be read (truncated record" in line
    assert "re-run beam_preprocess" in line


@pytest.mark.parametrize("args, prog, message", [
    (["predict", "--run", "{tmp}/no-run", "--data", "{tmp}", "--out", "{tmp}/s.csv"],
     "python -m trainer predict", "{tmp}/no-run is neither a run directory"),
    (["score", "--submission", "{tmp}/none.csv", "--labels", "{tmp}/labels.csv"],
     "python -m trainer score", "--submission {tmp}/none.csv: no such file"),
    (["train", "--data", "{tmp}", "--job-dir", "{tmp}/job", "--config", "{tmp}/c.json"],
     "python -m trainer train", "--config {tmp}/c.json: no such file"),
    (["report", "--tuner-dir", "{tmp}"],
     "python -m tuning report", "no trials under {tmp}/pilotstate: --tuner-dir must be"),
])
def test_user_errors_name_the_file_or_option(args, prog, message, tmp_path, capsys):
    args = [a.format(tmp=tmp_path) for a in args]
    main = tuning_main if prog.startswith("python -m tuning") else trainer_main
    assert main(args) == 2
    assert message.format(tmp=tmp_path) in _one_error_line(capsys, prog)


# --- 6: no abbreviations; numeric options and --stats say what is wrong


@pytest.mark.parametrize("parse, args, unrecognized", [
    (trainer_parser().parse_args, ["train", "--data", "d", "--epoch", "3"], "--epoch 3"),
    (tuning_parser().parse_args, ["search", "--data", "d", "--tuner-dir", "t",
                                  "--dropout", "0.3"], "--dropout 0.3"),
    (tuning_parser().parse_args, ["report", "--tuner-dir", "t", "--to", "3"], "--to 3"),
    (infra_parse_args, ["train", "--config", "c.toml", "--dry"], "--dry"),
])
def test_abbreviated_options_are_refused(parse, args, unrecognized, capsys):
    with pytest.raises(SystemExit):
        parse(args)
    assert f"unrecognized arguments: {unrecognized}" in capsys.readouterr().err


def test_beam_preprocess_passes_an_abbreviation_on_rather_than_expanding_it():
    known, beam_args = beam_parser().parse_known_args(["--output", "o", "--valid-frac", "0.5"])
    assert known.valid_fraction == 0.2 and beam_args == ["--valid-frac", "0.5"]


TUNING_SEARCH = ["search", "--data", "d", "--tuner-dir", "t"]
TRAINER_PREDICT = ["predict", "--run", "r", "--data", "d", "--out", "o"]


@pytest.mark.parametrize("parse, args, message", [
    (tuning_parser().parse_args, TUNING_SEARCH + ["--dropout-range", "0.3"],
     "argument --dropout-range: '0.3' is not LOW,HIGH (two numbers"),
    (tuning_parser().parse_args, TUNING_SEARCH + ["--dropout-range", "0.1,0.2,0.3"],
     "argument --dropout-range: '0.1,0.2,0.3' is not LOW,HIGH"),
    (tuning_parser().parse_args, TUNING_SEARCH + ["--dropout-range", "0.3,0.1"],
     "argument --dropout-range: '0.3,0.1': LOW 0.3 is above HIGH 0.1"),
    (trainer_parser().parse_args, ["train", "--data", "d", "--epochs", "0"],
     "argument --epochs: '0' is not an integer >= 1"),
    (trainer_parser().parse_args, TRAINER_PREDICT + ["--balance", "1.5"],
     "argument --balance: '1.5' is above 1"),
    (trainer_parser().parse_args, TRAINER_PREDICT + ["--balance", "-0.1"],
     "argument --balance: '-0.1' is below 0"),
    (trainer_parser().parse_args, TRAINER_PREDICT + ["--balance", "half"],
     "argument --balance: 'half' is not a float number"),
])
def test_numeric_options_say_what_is_wrong(parse, args, message, capsys):
    """A range takes two ordered numbers; a share is a number from 0 to 1."""
    with pytest.raises(SystemExit):
        parse(args)
    assert message in capsys.readouterr().err


def test_a_missing_stats_file_names_the_option(tmp_path, capsys):
    missing = tmp_path / "manifest.json"
    (tmp_path / "test.csv").write_text("")
    assert beam_main(["--test", str(tmp_path / "test.csv"), "--stats", str(missing),
                      "--output", str(tmp_path / "out")]) == 1
    assert f"--stats {missing}: no such file" in capsys.readouterr().err


# --- 9: --help at once (no TensorFlow), every option with its default and choices


@pytest.mark.parametrize("argv", [["trainer", "--help"], ["trainer", "train", "--help"],
                                  ["trainer", "predict", "--help"], ["tuning", "--help"],
                                  ["tuning", "search", "--help"], ["tuning", "report", "--help"]])
def test_help_does_not_import_tensorflow(argv):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", *argv], env=_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: python -m" in done.stdout, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"tensorflow", "keras", "keras_tuner"}, sorted(imported)


def _subcommands(prog: str, parser: argparse.ArgumentParser) -> list:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [(f"{prog} {name}", sub) for name, sub in commands.choices.items()]


COMMAND_PARSERS = [*_subcommands("trainer", trainer_parser()),
                   *_subcommands("tuning", tuning_parser()),
                   *_subcommands("infra", infra_parser())]


@pytest.mark.parametrize("name, parser", COMMAND_PARSERS, ids=[n for n, _ in COMMAND_PARSERS])
def test_every_option_says_its_default_and_choices(name, parser):
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        option = action.option_strings[0]
        assert action.help and re.search(r"default|required", action.help, re.I), option
        for choice in action.choices or ():
            assert str(choice) in action.help, (option, choice)


def test_window_and_devices_defaults_are_said_in_words(capsys):
    with pytest.raises(SystemExit):
        trainer_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Default: the data's window (its manifest.json)" in text
    assert "Default: every visible GPU, else the CPU" in text
    assert "choices: sampling, weights, none. Default: sampling" in text


def test_infra_command_help_shows_its_options(capsys):
    with pytest.raises(SystemExit) as done:
        infra_parse_args(["train", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m infra train [-h] --config FILE")
    assert "Train on a self-deleting GPU VM." in out and "--dry-run" in out


def test_infra_warns_of_the_templates_placeholders(tmp_path, capsys):
    assert infra_main(["train", "--config", str(CLOUD_TEMPLATE), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {CLOUD_TEMPLATE} still holds the template's placeholders" in err
    assert "[project] id = 'your-project-id'" in err
    filled = tmp_path / "cloud.toml"
    filled.write_text(CLOUD_TEMPLATE.read_text().replace("your-project-id", "acme-pilots"))
    assert infra_main(["train", "--config", str(filled), "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


# --- 8 and 10: a tiny training run on a terminal, as a person would see it


@pytest.fixture(scope="module")
def terminal_run(trainer_data_dir, tmp_path_factory) -> str:
    """What `python -m trainer train` writes to a terminal (its stderr is a pty), with
    TF_CPP_MIN_LOG_LEVEL unset."""
    job_dir = str(tmp_path_factory.mktemp("terminal_job"))
    args = ["train", "--data", trainer_data_dir, "--job-dir", job_dir, *TINY_TRAIN_ARGS,
            "--epochs", "2", "--steps-per-epoch", "40"]
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "trainer", *args], env=_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=600) == 0, b"".join(chunks).decode()[-3000:]
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_tensorflow_start_up_is_quiet_and_the_devices_are_said(terminal_run):
    assert not NATIVE_LOG_LINE.search(terminal_run), terminal_run
    assert "cuInit" not in terminal_run and "absl::InitializeLog" not in terminal_run
    assert re.search(r"training on (the CPU \(no GPU found\)|\d+ GPUs?: )", terminal_run)


def test_start_up_filter_keeps_errors_and_python_output():
    cuinit = ("E0000 00:00:1795777655.865562   22380 cuda_platform.cc:52] failed call to cuInit: "
              "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    kept = ("E0000 00:00:1795777655.9   22380 env.cc:7] could not open libdevice\n"
            "/venv/x.py:1: UserWarning: something the user should see\n")
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n"
            "I0000 00:00:1795777652.246871   22380 cudart_stub.cc:31] Could not find cuda "
            "drivers on your machine, GPU will not be used.\n"
            "I0000 00:00:1795777652.288752   22380 cpu_feature_guard.cc:227] This TensorFlow "
            "binary is optimized to use available CPU instructions.\n"
            "To enable the following instructions: AVX2 FMA, rebuild TensorFlow.\n"
            + cuinit + kept)
    assert without_start_up_notices(text, gpu_found=False) == kept
    assert without_start_up_notices(text, gpu_found=True) == cuinit + kept


def test_training_shows_a_progress_line_on_a_terminal(terminal_run):
    updates = re.findall(r"\r\x1b\[Ktraining: (\d+)/2560 windows \(\d+%\), \d+ windows/s, "
                         r"ETA \d+:\d\d:\d\d", terminal_run)
    assert updates and int(updates[-1]) == 2560, terminal_run


def test_progress_prints_plain_lines_when_not_on_a_terminal():
    out = io.StringIO()
    progress = Progress("predicting", total=300, stream=out, interval=0.0)
    for _ in range(3):
        progress.advance(100)
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 3
    assert re.fullmatch(r"predicting: 300/300 windows \(100%\), \d+ windows/s, ETA 0:00:00",
                        lines[-1]), lines


def test_epoch_lines_give_one_validation_loss_and_each_class(terminal_run):
    epochs = re.findall(r"epoch \d step \d+: .*", terminal_run)
    assert len(epochs) == 2, terminal_run
    for line in epochs:
        assert re.fullmatch(r"epoch \d step \d+: train loss \d\.\d{4}, valid log loss "
                            r"\d\.\d{4} \(A \d\.\d{3}, B \d\.\d{3}, C \d\.\d{3}, D \d\.\d{3}\)",
                            line.strip()), line
