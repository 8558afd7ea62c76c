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
A user error prints one line and exits with status 2 (--verbose: its traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Optional, Sequence

from trainer import console
from trainer.config import (FRONT_ENDS, TrainConfig, add_config_arguments, config_from_args,
                            parse_bool)
from trainer.errors import exit_on_user_error
from trainer.output_claim import ClaimLostError, OutputClaimedError
from tuning.settings import ALGORITHMS, SearchSettings
from tuning.space import TUNED_KEYS, SearchSpace, shown

PROG = "python -m tuning"

BASE = "the --config file's value, else {}"  # help of a dimension Fixed by default


def _values(cast: Callable[[str], Any]) -> Callable[[str], tuple]:
    """Parses a comma-separated list with `cast` (argparse reports what fails)."""
    def parse(text: str) -> tuple:
        try:
            return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
        except (ValueError, argparse.ArgumentTypeError) as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from err
    return parse


def _range(text: str) -> tuple[float, float]:
    """LOW,HIGH: two numbers, LOW <= HIGH."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW,HIGH (two numbers, e.g. "
                                         "0.1,0.3)") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"{text!r}: LOW {low:g} is above HIGH {high:g}")
    return low, high


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
    search.add_argument("--max-trials", type=int, default=settings.max_trials, metavar="N",
                        help="trials of random and bayesian (hyperband: set by --epochs "
                             f"and --hyperband-factor). Default: {settings.max_trials}")
    search.add_argument("--hyperband-factor", type=int, default=settings.hyperband_factor,
                        metavar="N", help="hyperband's reduction factor: each round keeps "
                        "1/N of the trials and trains them N times longer. "
                        f"Default: {settings.hyperband_factor}")
    search.add_argument("--overwrite", action="store_true",
                        help="delete --tuner-dir and start afresh. Default: resume the search "
                             "in --tuner-dir")
    search.add_argument("--max-layers", type=int, default=default.max_layers, metavar="N",
                        help=f"1 to this many LSTM layers. Default: {default.max_layers}")
    search.add_argument("--units", type=_values(int), default=default.units, metavar="LIST",
                        help=f"choices of units per layer. Default: {shown(default.units)}")
    search.add_argument("--batch-sizes", type=_values(int), default=default.batch_sizes,
                        metavar="LIST", help="choices of global minibatch size. "
                        f"Default: {shown(default.batch_sizes)}")
    search.add_argument("--dropout-range", type=_range, default=default.dropout,
                        metavar="LOW,HIGH", help="range of dropout, in steps of 0.1. "
                        f"Default: {shown(default.dropout)}")
    search.add_argument("--learning-rate-range", type=_range, default=default.learning_rate,
                        metavar="LOW,HIGH", help="range of the learning rate, sampled on a "
                        f"log scale. Default: {shown(default.learning_rate)}")
    search.add_argument("--front-ends", type=_values(str), default=default.front_ends,
                        metavar="LIST", help=f"choices among {','.join(FRONT_ENDS)}. "
                        "Default: " + BASE.format(trainer.front_end))
    search.add_argument("--windows", type=_values(int), default=default.windows,
                        metavar="LIST", help="choices of rows per window, each at most the "
                        "data's window. Default: " + BASE.format("the data's window"))
    search.add_argument("--frames", type=_values(int), default=default.frames,
                        metavar="LIST", help="choices of rows per frame (spectral, "
                        "filterbank), each at most every window. Default: "
                        + BASE.format(trainer.frame))
    search.add_argument("--hop-fractions", type=_values(float), default=default.hop_fractions,
                        metavar="LIST", help="choices of hop / frame in (0, 1] (hop = frame x "
                        "fraction, rounded). Default: the --config file's hop / frame, else "
                        f"{trainer.hop / trainer.frame:g}")
    search.add_argument("--augment", type=_values(float), default=default.augment,
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
    report.add_argument("--top", type=int, default=3, metavar="N",
                        help="the best N trials are drawn in the per-class plot. Default: 3")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    console.start(args.verbose)
    return exit_on_user_error(f"{PROG} {args.command}", args.verbose, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    # Imported here so that `--help` and argument errors do not wait for TensorFlow.
    if args.command == "search":
        from trainer.data import shards_read_whole
        from tuning.search import search

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
        try:
            with shards_read_whole(args.data):
                tuner = search(settings, args.tuner_dir, overwrite=args.overwrite)
        except (OutputClaimedError, ClaimLostError) as err:
            print(f"{PROG} search: {err}", file=sys.stderr)
            return 1
        trials = tuner.oracle.get_best_trials(1)
        print(json.dumps({"tuner_dir": args.tuner_dir,
                          "best_trial": trials[0].trial_id if trials else None,
                          "best_score": trials[0].score if trials else None}))
    else:
        from tuning.report import write_report

        summary = write_report(args.tuner_dir, top=args.top)
        print(summary.pop("table"))
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
