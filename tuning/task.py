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
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable, Optional, Sequence

from trainer.config import FRONT_ENDS, TrainConfig, add_config_arguments, config_from_args
from trainer.output_claim import ClaimLostError, OutputClaimedError
from tuning.space import TUNED_KEYS, SearchSpace, SpaceError, shown

BASE = "the --config file's value, else {}"  # help of a dimension Fixed by default


def _values(cast: Callable[[str], Any]) -> Callable[[str], tuple]:
    """Parses a comma-separated list with `cast` (argparse reports what fails)."""
    def parse(text: str) -> tuple:
        try:
            return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from err
    return parse


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{text!r} is not true or false")
    return text.lower() == "true"


def _parser() -> argparse.ArgumentParser:
    from tuning.search import ALGORITHMS

    default, trainer = SearchSpace(), TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    # No abbreviations: `--hop 16` must not pass for `--hop-fractions 16`.
    search = commands.add_parser("search", help="run or resume a search", allow_abbrev=False)
    search.add_argument("--data", required=True, help="beam_preprocess output directory")
    search.add_argument("--tuner-dir", required=True, help="local or gs:// directory")
    search.add_argument("--algorithm", choices=ALGORITHMS, default="hyperband",
                        help="default: hyperband")
    search.add_argument("--max-trials", type=int, default=10,
                        help="trials of random and bayesian (hyperband: set by --epochs "
                             "and --hyperband-factor); default: 10")
    search.add_argument("--hyperband-factor", type=int, default=3, help="default: 3")
    search.add_argument("--overwrite", action="store_true",
                        help="start afresh (default: resume the search in --tuner-dir)")
    search.add_argument("--max-layers", type=int, default=default.max_layers,
                        help=f"1 to this many LSTM layers; default: {default.max_layers}")
    search.add_argument("--units", type=_values(int), default=default.units,
                        help=f"choices of units per layer; default: {shown(default.units)}")
    search.add_argument("--batch-sizes", type=_values(int), default=default.batch_sizes,
                        help="choices of global minibatch size; "
                             f"default: {shown(default.batch_sizes)}")
    search.add_argument("--dropout-range", type=_values(float), default=default.dropout,
                        help=f"LOW,HIGH (steps of 0.1); default: {shown(default.dropout)}")
    search.add_argument("--learning-rate-range", type=_values(float),
                        default=default.learning_rate,
                        help=f"LOW,HIGH (log scale); default: {shown(default.learning_rate)}")
    search.add_argument("--front-ends", type=_values(str), default=default.front_ends,
                        help=f"choices among {','.join(FRONT_ENDS)}; default: "
                             + BASE.format(trainer.front_end))
    search.add_argument("--windows", type=_values(int), default=default.windows,
                        help="choices of rows per window, each at most the data's window; "
                             "default: " + BASE.format("the data's window"))
    search.add_argument("--frames", type=_values(int), default=default.frames,
                        help="choices of rows per frame (spectral, filterbank), each at most "
                             "every window; default: " + BASE.format(trainer.frame))
    search.add_argument("--hop-fractions", type=_values(float), default=default.hop_fractions,
                        help="choices of hop / frame in (0, 1] (hop = frame x fraction, "
                             "rounded); default: the --config file's hop / frame, else "
                             f"{trainer.hop / trainer.frame:g}")
    search.add_argument("--augment", type=_values(float), default=default.augment,
                        help="choices of a multiplier of the four augment_* options "
                             "(augment_shift rounded; 0: no augmentation); "
                             f"default: {shown(default.augment)}")
    # Its own dest: `temperature_scaling` would pass for the trainer option in config_from_args.
    search.add_argument("--temperature-scaling", type=_values(_bool),
                        dest="temperature_scaling_choices", default=default.temperature_scaling,
                        help="choices among true,false; default: "
                             + BASE.format(str(trainer.temperature_scaling).lower()))
    add_config_arguments(search, exclude=TUNED_KEYS)

    report = commands.add_parser("report", help="table, plots, HParams logs, best config")
    report.add_argument("--tuner-dir", required=True)
    report.add_argument("--top", type=int, default=3, help="trials in the per-class plot")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    # Imported here so that `--help` and argument errors do not wait for TensorFlow.
    if args.command == "search":
        from tuning.search import SearchSettings, search

        try:
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
            tuner = search(settings, args.tuner_dir, overwrite=args.overwrite)
        except SpaceError as err:
            print(f"python -m tuning search: {err}", file=sys.stderr)
            return 2
        except (OutputClaimedError, ClaimLostError) as err:
            print(f"python -m tuning search: {err}", file=sys.stderr)
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
