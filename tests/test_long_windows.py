"""--carry-seconds and --valid-block-seconds follow --window unless given; explicit
values are kept and checked.  The end-to-end run with a 4-s window is in
test_pipeline_to_trainer.py (it shares that module's generated input)."""
from __future__ import annotations

import dataclasses

import pytest

from beam_preprocess.__main__ import main
from beam_preprocess.options import PreprocessConfig, build_parser, parse_args

INPUTS = ["--train", "train.csv", "--output", "out"]


@pytest.mark.parametrize("window, carry, valid_block", [
    (2, 4.0, 8.0),
    (256, 4.0, 8.0),      # the defaults before they followed the window
    (513, 4.0, 8.0),      # 4 spans = 8.0 s
    (514, 4.0, 9.0),
    (1024, 4.0, 16.0),
    (1025, 4.0, 16.0),    # span = 4.0 s exactly
    (1026, 5.0, 17.0),
    (2048, 8.0, 32.0),
])
def test_defaults_follow_the_window(window, carry, valid_block):
    config, _ = parse_args(INPUTS + ["--window", str(window)])
    assert (config.carry_seconds, config.valid_block_seconds) == (carry, valid_block)
    assert config == PreprocessConfig(output="out", train="train.csv", window=window)
    span = (window - 1) / 256
    assert span <= config.carry_seconds < config.block_seconds
    assert config.valid_block_seconds >= 4 * span


def test_manifest_options_hold_the_resolved_values():
    config, _ = parse_args(INPUTS + ["--window", "2048"])
    options = dataclasses.asdict(config)  # what the pipeline writes as manifest "options"
    assert (options["carry_seconds"], options["valid_block_seconds"]) == (8.0, 32.0)


def test_explicit_values_are_kept():
    config, _ = parse_args(INPUTS + ["--window", "2048", "--carry-seconds", "8.5",
                                     "--valid-block-seconds", "12"])
    assert (config.carry_seconds, config.valid_block_seconds) == (8.5, 12.0)


def test_explicit_too_short_carry_is_refused():
    with pytest.raises(ValueError, match=r"--carry-seconds 4 is too short for --window 2048: "
                                         r"it must be at least .* = 7\.996 s "
                                         r"\(leave it out to get 8 s\)"):
        parse_args(INPUTS + ["--window", "2048", "--carry-seconds", "4"])


def test_too_short_carry_fails_the_command_with_the_message(capsys):
    assert main(INPUTS + ["--window", "1024", "--carry-seconds", "2"]) == 1
    assert "--carry-seconds 2 is too short for --window 1024" in capsys.readouterr().err


def test_block_must_exceed_the_derived_carry():
    with pytest.raises(ValueError, match="--block-seconds 8 must exceed --carry-seconds 8"):
        parse_args(INPUTS + ["--window", "2048", "--block-seconds", "8"])


def test_help_states_the_derived_defaults():
    text = " ".join(build_parser().format_help().split())
    assert "window 2048: 8)" in text and "window 2048: 32)" in text
