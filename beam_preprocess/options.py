"""Command line of beam_preprocess: our options, and Beam's passed through untouched."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from typing import Callable, Optional, Sequence

from beam_preprocess import kaggle_schema as ks
from trainer.records import spec as record_spec

# Beam 2.77's DirectRunner first tries to download the Prism runner binary (no
# network here, it logs and falls back).  FnApiRunner is a known runner name that
# runs the same portable engine directly and honours --direct_num_workers and
# --direct_running_mode, so it is the default when no --runner is given.
DEFAULT_RUNNER = "FnApiRunner"
# FnApiRunner runs each fused stage as one bundle in one thread unless given
# --direct_num_workers N: then it cuts every stage's input into N parts and runs them
# in N threads of this process at once (its default in_memory mode: in-process workers,
# so a failing step's exception keeps its type and main reports it in one line; the
# multi_threading mode's gRPC workers turn it into a traceback text).  The job's heavy
# work releases the GIL (zlib's GZIP, pyarrow's CSV reader, numpy, file writes: the GIL
# is held ~15% of the time, py-spy on the test split), so without the user's own
# --direct_num_workers or --direct_running_mode the job takes one worker per usable
# core, at most this many (memory grows by a parsed chunk and a block per worker).
MAX_DEFAULT_LOCAL_WORKERS = 4
_PARALLEL_OPTIONS = ("--direct_num_workers", "--direct_running_mode")
# Beam 2.77 warns that N workers in in_memory mode lack "the desired worker parallelism
# effect"; its FnApiRunner does run them in parallel (ParallelBundleManager), so the
# warning is dropped where the job set N itself.
_FN_RUNNER_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner"
_IN_MEMORY_WORKERS_WARNING = "If direct_num_workers is not equal to 1"

# Floors of the window-derived defaults (their fixed values before they followed it).
MIN_DEFAULT_CARRY_SECONDS = 4.0
MIN_DEFAULT_VALID_BLOCK_SECONDS = 8.0
VALID_BLOCK_WINDOWS = 4  # window spans per default validation unit
# Settings of how a run holds its rows or what it prints, not of what it writes: not in
# the manifest (a run with other values writes the same files).
OUTPUT_NEUTRAL_OPTIONS = ("spill", "spill_dir", "verbose")


def window_span_seconds(window: int) -> float:
    """Time from a window's first sample to its last: the context a window end needs."""
    return (window - 1) / record_spec.SAMPLE_RATE_HZ


def default_carry_seconds(window: int) -> float:
    """The least carry that gives a block a full window of context, in whole seconds
    (at least MIN_DEFAULT_CARRY_SECONDS)."""
    return max(MIN_DEFAULT_CARRY_SECONDS, float(math.ceil(window_span_seconds(window))))


def default_valid_block_seconds(window: int) -> float:
    """VALID_BLOCK_WINDOWS window spans in whole seconds (at least
    MIN_DEFAULT_VALID_BLOCK_SECONDS).

    The first window - 1 rows after a split change end no window, so a validation
    unit between training units keeps only (unit - span) / unit of its rows as
    window ends: none for an 8-s window in an 8-s unit, at least 3/4 at four spans.
    Much longer units would take whole sessions and make the validation share and
    its classes coarse.
    """
    return max(MIN_DEFAULT_VALID_BLOCK_SECONDS,
               float(math.ceil(VALID_BLOCK_WINDOWS * window_span_seconds(window))))


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """All pipeline settings that are not Beam's own.

    carry_seconds and valid_block_seconds left at None follow the window
    (default_carry_seconds, default_valid_block_seconds); they are filled in on
    construction, so every config and the manifest hold the values used.
    """

    output: str
    train: Optional[str] = None
    test: Optional[str] = None
    stats: Optional[str] = None
    window: int = 2048  # 8 s: chosen by the worst case over the quality bench (docs/decisions.md)
    block_seconds: float = 64.0
    carry_seconds: Optional[float] = None
    scaling: str = "standard"
    scale_by: str = "global"
    valid_fraction: float = 0.2
    valid_block_seconds: Optional[float] = None
    holdout_crews: tuple[int, ...] = ()
    valid_windows_per_class: Optional[int] = None
    seed: int = 0
    max_bad_fraction: float = 0.001
    num_shards: int = 0
    range_mib: int = 64
    chunk_mib: int = 8
    overwrite: bool = False
    verbose: bool = False   # console output only; changes nothing in the output
    spill: str = "auto"
    spill_dir: Optional[str] = None

    def __post_init__(self) -> None:
        if self.carry_seconds is None:
            object.__setattr__(self, "carry_seconds", default_carry_seconds(self.window))
        if self.valid_block_seconds is None:
            object.__setattr__(self, "valid_block_seconds",
                               default_valid_block_seconds(self.window))

    def check(self) -> None:
        """Refuses settings that cannot work, in one line naming the option."""
        if not self.train and not self.test:
            raise ValueError("give --train, --test or both")
        if not self.train and not self.stats:
            raise ValueError("a test-only run needs --stats (the manifest.json of an "
                             "earlier run with --train) for its scaling statistics")
        if self.train and self.stats:
            raise ValueError("--stats is for test-only runs; with --train the statistics "
                             "are computed from the training rows")
        self._check_numbers()
        min_carry = window_span_seconds(self.window)
        if self.carry_seconds < min_carry:
            raise ValueError(
                f"--carry-seconds {self.carry_seconds:g} is too short for --window "
                f"{self.window}: it must be at least (window - 1) / "
                f"{record_spec.SAMPLE_RATE_HZ} = {min_carry:.3f} s (leave it out to get "
                f"{default_carry_seconds(self.window):g} s)")
        if self.block_seconds <= self.carry_seconds:
            raise ValueError(f"--block-seconds {self.block_seconds:g} must exceed "
                             f"--carry-seconds {self.carry_seconds:g} (by default the "
                             f"window's span in whole seconds)")
        unknown = sorted(set(self.holdout_crews) - set(ks.CREWS))
        if unknown:
            raise ValueError(
                f"--holdout-crews {','.join(map(str, self.holdout_crews))}: no crew "
                f"{', '.join(map(str, unknown))} in the Kaggle data (its crews: "
                f"{', '.join(map(str, ks.CREWS))})")
        if self.spill_dir and "://" in self.spill_dir:
            raise ValueError(f"--spill-dir {self.spill_dir}: must be a local directory")

    def _check_numbers(self) -> None:
        _check_range("--window", self.window, 2)
        _check_range("--block-seconds", self.block_seconds, 0, low_open=True)
        _check_range("--carry-seconds", self.carry_seconds, 0, low_open=True)
        _check_range("--valid-fraction", self.valid_fraction, 0, 1, high_open=True)
        _check_range("--valid-block-seconds", self.valid_block_seconds, 0, low_open=True)
        if self.valid_windows_per_class is not None:
            _check_range("--valid-windows-per-class", self.valid_windows_per_class, 1)
        _check_range("--max-bad-fraction", self.max_bad_fraction, 0, 1)
        _check_range("--num-shards", self.num_shards, 0)
        _check_range("--range-mib", self.range_mib, 1)
        _check_range("--chunk-mib", self.chunk_mib, 1)


def _check_range(option: str, value: float, low: float, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False) -> None:
    """Refuses a value outside [low, high] (an open end excludes it) or not finite, in one
    line naming the option.  Written as what is allowed: nan fails every comparison."""
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if math.isfinite(value) and above and below:
        return
    if high == math.inf:
        allowed = f"above {low:g}" if low_open else f"at least {low:g}"
    else:
        allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    raise ValueError(f"{option} {value:g}: must be a finite number {allowed}")


def _crews(text: str) -> tuple[int, ...]:
    return tuple(sorted(int(c) for c in text.split(",") if c.strip()))


def _examples(default_of: Callable[[int], float]) -> str:
    """A derived default at a few windows, for --help: '(window 256: 8, ...)'."""
    return "(" + ", ".join(f"window {w}: {default_of(w):g}" for w in (256, 1024, 2048)) + ")"


def build_parser() -> argparse.ArgumentParser:
    d = PreprocessConfig(output="")
    p = argparse.ArgumentParser(
        prog="python -m beam_preprocess", allow_abbrev=False,
        description="Kaggle pilot CSVs -> sorted, scaled, split TFRecord segments, "
                    "manifest.json and a quarantine file. Runs locally on Beam's "
                    f"{DEFAULT_RUNNER} unless --runner is given (e.g. --runner "
                    "DataflowRunner), there with one worker thread per core (at most "
                    f"{MAX_DEFAULT_LOCAL_WORKERS}) if neither --direct_num_workers nor "
                    "--direct_running_mode is given. Options not listed here are Beam "
                    "pipeline options "
                    "(--runner, --project, --region, --temp_location, ...), passed through.")
    p.add_argument("--train", help="train.csv path or glob (local or gs://; .gz, .bz2, .xz, "
                                   ".zst or .deflate are decompressed). Default: none")
    p.add_argument("--test", help="test.csv path or glob, like --train. Default: none "
                                  "(give --train, --test or both)")
    p.add_argument("--output", required=True,
                   help="output directory (local or gs://); required, must be empty "
                        "unless --overwrite")
    p.add_argument("--stats", help="manifest.json of an earlier run with --train, whose "
                                   "scaling statistics a test-only run uses. Default: none "
                                   "(required without --train)")
    p.add_argument("--window", type=int, default=d.window,
                   help=f"window length in rows ({record_spec.SAMPLE_RATE_HZ} = 1 s); "
                        "--carry-seconds and --valid-block-seconds follow it "
                        f"(default {d.window})")
    p.add_argument("--block-seconds", type=float, default=d.block_seconds,
                   help="time block per work item; no worker holds more of a session "
                        f"(default {d.block_seconds:g}; must exceed --carry-seconds)")
    p.add_argument("--carry-seconds", type=float, default=None,
                   help="tail of a block sent to the next one as context candidates, at "
                        f"least (window - 1) / {record_spec.SAMPLE_RATE_HZ} s. Default: that "
                        f"in whole seconds, at least {MIN_DEFAULT_CARRY_SECONDS:g} "
                        f"{_examples(default_carry_seconds)}")
    p.add_argument("--scaling", choices=("standard", "robust"), default=d.scaling,
                   help="per-channel scaling from training rows: standard = (x - mean) / sd, "
                        f"robust = (x - median) / IQR (default {d.scaling})")
    p.add_argument("--scale-by", choices=("global", "pilot"), default=d.scale_by,
                   help="one set of statistics for all rows (global), or one per pilot "
                        "(crew and seat; a pilot without training rows gets the global ones) "
                        f"(default {d.scale_by})")
    p.add_argument("--valid-fraction", type=float, default=d.valid_fraction,
                   help="share of each class's training window ends taken as validation, "
                        f"in [0, 1); 0 = no validation split (default {d.valid_fraction:g})")
    p.add_argument("--valid-block-seconds", type=float, default=None,
                   help="length of the time units that go whole to train or valid. Default: "
                        f"{VALID_BLOCK_WINDOWS} windows in whole seconds, at least "
                        f"{MIN_DEFAULT_VALID_BLOCK_SECONDS:g} "
                        f"{_examples(default_valid_block_seconds)}, as the first window - 1 "
                        "rows of a unit end no window")
    p.add_argument("--holdout-crews", type=_crews, default=d.holdout_crews,
                   help="validate on these whole crews instead of time units, e.g. 3,7; "
                        "each must have training rows, and one crew must be left to train "
                        "on (default: none, time units by --valid-fraction)")
    p.add_argument("--valid-windows-per-class", type=int, default=None,
                   help="cap on the balanced validation windows per class (default: no "
                        "cap, the rarest class's count)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the validation choice, the balancing and the robust "
                        f"sample; same inputs and seed give the same output (default {d.seed})")
    p.add_argument("--max-bad-fraction", type=float, default=d.max_bad_fraction,
                   help="fail when more than this fraction of rows is quarantined, in "
                        f"[0, 1] (default {d.max_bad_fraction:g})")
    p.add_argument("--num-shards", type=int, default=d.num_shards,
                   help=f"shards per split; 0 = chosen by the runner (default {d.num_shards})")
    p.add_argument("--range-mib", type=int, default=d.range_mib,
                   help="byte range of an uncompressed input read by one work item, in MiB "
                        f"(default {d.range_mib})")
    p.add_argument("--chunk-mib", type=int, default=d.chunk_mib,
                   help=f"lines parsed per batch, in MiB of text (default {d.chunk_mib})")
    p.add_argument("--spill", choices=("auto", "on", "off"), default=d.spill,
                   help="write parsed rows to local files between reading and grouping, so "
                        "a local run's memory follows --chunk-mib and --block-seconds, not "
                        "the input's size: auto = on for local runners, off on Dataflow, "
                        f"whose shuffle does this itself (default {d.spill})")
    p.add_argument("--spill-dir", default=d.spill_dir,
                   help="local directory for the spill files, about 0.55x the CSVs' size, "
                        "in a folder pilotstate-spill-HOST-N-PID-XXXXXXXX removed at the "
                        "end; a run that spills first removes such folders left there by "
                        "killed runs of this machine (their PID gone, only spill files in "
                        "them), with a warning (default: the system's temporary directory)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing output first (default: refuse to write into "
                        "an output that holds files)")
    p.add_argument("--verbose", action="store_true",
                   help="show Beam's log lines and the traceback of a "
                        "failing step (default: progress, warnings and one-line errors)")
    return p


def default_local_workers() -> int:
    """One worker per core this process may use, at most MAX_DEFAULT_LOCAL_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_LOCAL_WORKERS))


def _given(beam_args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in beam_args)


def _runner(beam_args: Sequence[str]) -> str:
    """The last --runner's value (Beam's parser keeps the last)."""
    runner = ""
    for i, arg in enumerate(beam_args):
        if arg == "--runner" and i + 1 < len(beam_args):
            runner = beam_args[i + 1]
        elif arg.startswith("--runner="):
            runner = arg[len("--runner="):]
    return runner


class _DropInMemoryWorkersWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_IN_MEMORY_WORKERS_WARNING)


def with_runner_defaults(beam_args: Sequence[str]) -> list[str]:
    """Beam's arguments with the job's local defaults: --runner FnApiRunner if no runner
    is given, and on FnApiRunner --direct_num_workers default_local_workers() unless
    --direct_num_workers or --direct_running_mode is given."""
    beam_args = list(beam_args)
    if not _given(beam_args, "--runner"):
        beam_args = ["--runner", DEFAULT_RUNNER] + beam_args
    if _runner(beam_args) == DEFAULT_RUNNER and not any(
            _given(beam_args, option) for option in _PARALLEL_OPTIONS):
        beam_args += ["--direct_num_workers", str(default_local_workers())]
        logger = logging.getLogger(_FN_RUNNER_LOGGER)
        if not any(isinstance(f, _DropInMemoryWorkersWarning) for f in logger.filters):
            logger.addFilter(_DropInMemoryWorkersWarning())
    return beam_args


def parse_args(argv: Sequence[str]) -> tuple[PreprocessConfig, list[str]]:
    """Our config, and the remaining arguments for Beam's PipelineOptions (with the
    job's local runner defaults, with_runner_defaults)."""
    known, beam_args = build_parser().parse_known_args(list(argv))
    config = PreprocessConfig(**vars(known))
    config.check()
    return config, with_runner_defaults(beam_args)
