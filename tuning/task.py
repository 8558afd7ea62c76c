"""Command line: `python -m tuning {search,report} ...` (also `pilotstate-tune`).

    search  --data DIR --tuner-dir DIR [--algorithm hyperband|bayesian|random]
            [--max-trials N] [--hyperband-factor N] [--overwrite]
            [--max-layers N] [--units 32,64,...] [--batch-sizes 64,128,...]
            [--dropout-range LOW,HIGH] [--learning-rate-range LOW,HIGH]
            [--front-ends spectral,...] [--windows 256,...] [--frames 32,64,...]
            [--hop-fractions 0.5,1] [--augment 0,1,2] [--temperature-scaling true,false]
            [--config FILE] [--<trainer option> VALUE ...]   (the fixed settings)
    report  --tuner-dir DIR [--top N]

The tuned keys (lstm_units, dropout, learning_rate, global_batch_size, front_end,
window, frame, hop, temperature_scaling) come from each trial; `--augment`
multiplies the augment_* options; every other TrainConfig key comes from --config
and the trainer options (epochs is the most epochs a trial may run, patience
stops a trial early as it stops a training run).  For a distributed search,
run the same `search` command on every machine with KERASTUNER_TUNER_ID
(`chief` on one, `tuner0`, `tuner1`, ... on the others), KERASTUNER_ORACLE_IP
and KERASTUNER_ORACLE_PORT set, and a --tuner-dir that all can reach (gs://).
A user error prints one line and exits with status 2 (--verbose: its traceback).  A
trial whose loss becomes NaN or infinite fails and the search goes on; a search that
finishes no trial at all says so in one line and exits with status 1.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any, Callable, Optional, Sequence

from trainer.config import (AT_LEAST_ONE, FRONT_ENDS, TrainConfig, add_config_arguments,
                            config_from_args, number_type, parse_bool)
from trainer.shared import console
from trainer.shared.errors import UserError, exit_on_user_error
from trainer.shared.gcs_access import check_gcs_access
from trainer.shared.output_claim import ClaimLostError, OutputClaim, OutputClaimedError
from tuning.settings import ALGORITHMS, SETTING_RANGES, SearchSettings, is_worker
from tuning.space import RANGES, TUNED_KEYS, SearchSpace, shown

PROG = "python -m tuning"

BASE = "the --config file's value, else {}"  # help of a dimension Fixed by default
CONSECUTIVE_FAILURES = "Number of consecutive failures exceeded the limit"  # keras-tuner's
DIVERGED_TRIAL = "FailedTrialError: "  # how a trial failed by tuning/hypermodel.py ends


class SearchFailedError(UserError):
    """The search finished no trial: every trial failed (e.g. its loss became NaN)."""

    exit_status = 1  # the settings were valid; the trials failed


def _values(cast: Callable[[str], Any]) -> Callable[[str], tuple]:
    """Parses a comma-separated list with `cast` (argparse reports what fails)."""
    def parse(text: str) -> tuple:
        try:
            return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
        except (ValueError, argparse.ArgumentTypeError) as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from err
    return parse


def _range(name: str) -> Callable[[str], tuple[float, float]]:
    """LOW,HIGH: two numbers in the dimension's allowed range (tuning.space.RANGES),
    LOW <= HIGH."""
    allowed = RANGES[name]

    def parse(text: str) -> tuple[float, float]:
        try:
            low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not LOW,HIGH (two numbers, e.g. "
                                             "0.1,0.3)") from None
        for which, value in (("LOW", low), ("HIGH", high)):
            if value not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: {which} {value:g} is not {allowed.describe()}")
        if low > high:
            raise argparse.ArgumentTypeError(f"{text!r}: LOW {low:g} is above HIGH {high:g}")
        return low, high
    return parse


def _parser() -> argparse.ArgumentParser:
    default, trainer, settings = SearchSpace(), TrainConfig(), SearchSettings(data_dir="")
    # No abbreviations: `--hop 16` must not pass for `--hop-fractions 16`.
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    common = dict(allow_abbrev=False, parents=[console.verbose_option()])

    search = commands.add_parser("search", help="run or resume a search", **common)
    search.add_argument("--data", required=True, metavar="DIR",
                        help="the --output directory of beam_preprocess (required)")
    search.add_argument("--tuner-dir", required=True, metavar="DIR",
                        help="where the search keeps its trials, logs and report, local or "
                             "gs://; the same command resumes the search there (required)")
    search.add_argument("--algorithm", choices=ALGORITHMS, default=settings.algorithm,
                        help="keras-tuner's search algorithm; choices: "
                             f"{', '.join(ALGORITHMS)}. Default: {settings.algorithm}")
    search.add_argument("--max-trials", type=number_type(int, SETTING_RANGES["max_trials"]),
                        default=settings.max_trials, metavar="N",
                        help="trials of random and bayesian (hyperband: set by --epochs "
                             f"and --hyperband-factor). Default: {settings.max_trials}")
    search.add_argument("--hyperband-factor",
                        type=number_type(int, SETTING_RANGES["hyperband_factor"]),
                        default=settings.hyperband_factor,
                        metavar="N", help="hyperband's reduction factor: each round keeps "
                        "1/N of the trials and trains them N times longer. "
                        f"Default: {settings.hyperband_factor}")
    search.add_argument("--overwrite", action="store_true",
                        help="delete --tuner-dir and start afresh. Default: resume the search "
                             "in --tuner-dir")
    search.add_argument("--max-layers", type=number_type(int, RANGES["max_layers"]),
                        default=default.max_layers, metavar="N",
                        help=f"1 to this many LSTM layers. Default: {default.max_layers}")
    search.add_argument("--units", type=_values(number_type(int, RANGES["units"])),
                        default=default.units, metavar="LIST",
                        help=f"choices of units per layer. Default: {shown(default.units)}")
    search.add_argument("--batch-sizes", type=_values(number_type(int, RANGES["batch_sizes"])),
                        default=default.batch_sizes,
                        metavar="LIST", help="choices of global minibatch size. "
                        f"Default: {shown(default.batch_sizes)}")
    search.add_argument("--dropout-range", type=_range("dropout"), default=default.dropout,
                        metavar="LOW,HIGH", help="range of dropout, in steps of 0.1. "
                        f"Default: {shown(default.dropout)}")
    search.add_argument("--learning-rate-range", type=_range("learning_rate"),
                        default=default.learning_rate,
                        metavar="LOW,HIGH", help="range of the learning rate, sampled on a "
                        f"log scale. Default: {shown(default.learning_rate)}")
    search.add_argument("--front-ends", type=_values(str), default=default.front_ends,
                        metavar="LIST", help=f"choices among {','.join(FRONT_ENDS)}. "
                        "Default: " + BASE.format(trainer.front_end))
    search.add_argument("--windows", type=_values(number_type(int, RANGES["windows"])),
                        default=default.windows,
                        metavar="LIST", help="choices of rows per window, each at most the "
                        "data's window. Default: " + BASE.format("the data's window"))
    search.add_argument("--frames", type=_values(number_type(int, RANGES["frames"])),
                        default=default.frames,
                        metavar="LIST", help="choices of rows per frame (spectral, "
                        "filterbank), each at most every window. Default: "
                        + BASE.format(trainer.frame))
    # (0, 1] is checked by SearchSpace, whose message says why: the hop fits the frame.
    search.add_argument("--hop-fractions", type=_values(float), default=default.hop_fractions,
                        metavar="LIST", help="choices of hop / frame in (0, 1] (hop = frame x "
                        "fraction, rounded). Default: the --config file's hop / frame, else "
                        f"{trainer.hop / trainer.frame:g}")
    search.add_argument("--augment", type=_values(number_type(float, RANGES["augment"])),
                        default=default.augment,
                        metavar="LIST", help="choices of a multiplier of the four augment_* "
                        "options (augment_shift rounded; 0: no augmentation). "
                        f"Default: {shown(default.augment)}")
    # Its own dest: `temperature_scaling` would pass for the trainer option in config_from_args.
    search.add_argument("--temperature-scaling", type=_values(parse_bool),
                        dest="temperature_scaling_choices", default=default.temperature_scaling,
                        metavar="LIST", help="choices among true,false. Default: "
                        + BASE.format(str(trainer.temperature_scaling).lower()))
    add_config_arguments(search, exclude=TUNED_KEYS)

    report = commands.add_parser("report", help="table, plots, HParams logs, best config",
                                 **common)
    report.add_argument("--tuner-dir", required=True, metavar="DIR",
                        help="the --tuner-dir of a search; the report goes to DIR/report/ "
                             "(required)")
    report.add_argument("--top", type=number_type(int, AT_LEAST_ONE), default=3, metavar="N",
                        help="the best N trials are drawn in the per-class plot. Default: 3")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    console.start(args.verbose)
    return exit_on_user_error(f"{PROG} {args.command}", args.verbose, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    # Imported here so that `--help` and argument errors do not wait for TensorFlow.
    if args.command == "search":
        settings = SearchSettings(
            data_dir=args.data, algorithm=args.algorithm, max_trials=args.max_trials,
            hyperband_factor=args.hyperband_factor,
            space=SearchSpace(max_layers=args.max_layers, units=args.units,
                              batch_sizes=args.batch_sizes, dropout=args.dropout_range,
                              learning_rate=args.learning_rate_range,
                              front_ends=args.front_ends, windows=args.windows,
                              frames=args.frames, hop_fractions=args.hop_fractions,
                              augment=args.augment,
                              temperature_scaling=args.temperature_scaling_choices),
            base=config_from_args(args))
        # The chief claims the tuner directory before TensorFlow is imported, so that a
        # second chief is refused at once; a worker writes only its own trials.
        check_gcs_access({"--data": args.data, "--tuner-dir": args.tuner_dir,
                          "--config": args.config})
        writer = (contextlib.nullcontext() if is_worker()
                  else OutputClaim(args.tuner_dir, "python -m tuning search"))
        try:
            with writer as claim:
                console.import_tensorflow(args.verbose)
                from trainer.data.datasets import shards_read_whole
                from tuning.search import search

                with shards_read_whole(args.data):
                    try:
                        tuner = search(settings, args.tuner_dir, claim,
                                       overwrite=args.overwrite)
                    except RuntimeError as err:
                        # Trials that diverged (failed by design, tuning/hypermodel.py);
                        # a bug's failures keep keras-tuner's traceback.
                        if not (str(err).startswith(CONSECUTIVE_FAILURES)
                                and DIVERGED_TRIAL in str(err)):
                            raise
                        limit = str(err).splitlines()[0].rstrip(".").split()[-1]
                        raise SearchFailedError(
                            f"keras-tuner stopped the search after {limit} failed trials in a "
                            f"row (the last: {_failure(str(err))}); "
                            f"{_FAILED_HINT.format(args.tuner_dir)}") from None
        except (OutputClaimedError, ClaimLostError) as err:
            print(f"{PROG} search: {err}", file=sys.stderr)
            return 1
        if not is_worker():
            _require_a_finished_trial(tuner, args.tuner_dir)
        trials = tuner.oracle.get_best_trials(1)
        print(json.dumps({"tuner_dir": args.tuner_dir,
                          "best_trial": trials[0].trial_id if trials else None,
                          "best_score": trials[0].score if trials else None}))
    else:
        check_gcs_access({"--tuner-dir": args.tuner_dir})
        console.import_tensorflow(args.verbose)
        from tuning.report import write_report

        summary = write_report(args.tuner_dir, top=args.top)
        print(summary.pop("table"))
        print(json.dumps(summary, indent=2))
    return 0


_FAILED_HINT = ("each trial's trial.json in {}/pilotstate/trial_*/ says why it failed; if "
                "their losses became NaN or infinite, lower --learning-rate-range")


def _failure(message: str) -> str:
    """A failed trial's reason from keras-tuner's message (a traceback): the text of its
    last line, without the exception's name."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    last = lines[-1].strip()
    name, _, text = last.partition(": ")
    return text if text and name.endswith("FailedTrialError") else last


def _require_a_finished_trial(tuner, tuner_dir: str) -> None:
    """Raises SearchFailedError if no trial of the search (this run's or an earlier
    one's) finished: each failed, so the search has nothing to report."""
    trials = tuner.oracle.trials
    if not trials or any(t.status == "COMPLETED" for t in trials.values()):
        return
    order = [t for t in getattr(tuner.oracle, "end_order", []) if t in trials] or sorted(trials)
    raise SearchFailedError(
        f"no trial finished: the {len(trials)} trials failed (the last: "
        f"{_failure(trials[order[-1]].message)}); {_FAILED_HINT.format(tuner_dir)}")


if __name__ == "__main__":
    sys.exit(main())
