"""Command line: `python -m tuning {search,report} ...` (also `pilotstate-tune`).

    search  --data DIR --tuner-dir DIR [--algorithm hyperband|bayesian|random]
            [--max-trials N] [--patience N] [--hyperband-factor N] [--overwrite]
            [--max-layers N] [--units 32,64,...] [--batch-sizes 64,128,...]
            [--dropout-range LOW,HIGH] [--learning-rate-range LOW,HIGH]
            [--config FILE] [--<trainer option> VALUE ...]   (the fixed settings)
    report  --tuner-dir DIR [--top N]

The tuned keys (lstm_units, dropout, learning_rate, global_batch_size) come from
each trial; every other TrainConfig key comes from --config and the trainer
options (epochs is the most epochs a trial may run).  For a distributed search,
run the same `search` command on every machine with KERASTUNER_TUNER_ID
(`chief` on one, `tuner0`, `tuner1`, ... on the others), KERASTUNER_ORACLE_IP
and KERASTUNER_ORACLE_PORT set, and a --tuner-dir that all can reach (gs://).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

from trainer.config import add_config_arguments, config_from_args
from tuning.space import TUNED_KEYS, SearchSpace


def _numbers(cast):
    def parse(text: str) -> tuple:
        try:
            return tuple(cast(v) for v in text.split(",") if v.strip())
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from err
    return parse


def _parser() -> argparse.ArgumentParser:
    from tuning.search import ALGORITHMS

    default = SearchSpace()
    parser = argparse.ArgumentParser(prog="python -m tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="run or resume a search")
    search.add_argument("--data", required=True, help="beam_preprocess output directory")
    search.add_argument("--tuner-dir", required=True, help="local or gs:// directory")
    search.add_argument("--algorithm", choices=ALGORITHMS, default="hyperband")
    search.add_argument("--max-trials", type=int, default=10,
                        help="trials of random and bayesian (hyperband: set by --epochs "
                             "and --hyperband-factor); default 10")
    search.add_argument("--hyperband-factor", type=int, default=3)
    search.add_argument("--patience", type=int, default=2,
                        help="epochs without improvement before a trial stops; default 2")
    search.add_argument("--overwrite", action="store_true", help="start afresh")
    search.add_argument("--max-layers", type=int, default=default.max_layers)
    search.add_argument("--units", type=_numbers(int), default=default.units,
                        help="choices of units per layer")
    search.add_argument("--batch-sizes", type=_numbers(int), default=default.batch_sizes,
                        help="choices of global minibatch size")
    search.add_argument("--dropout-range", type=_numbers(float), default=default.dropout,
                        help="LOW,HIGH (steps of 0.1)")
    search.add_argument("--learning-rate-range", type=_numbers(float),
                        default=default.learning_rate,
                        help="LOW,HIGH (log scale)")
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

        settings = SearchSettings(
            data_dir=args.data, algorithm=args.algorithm, max_trials=args.max_trials,
            hyperband_factor=args.hyperband_factor, patience=args.patience,
            space=SearchSpace(max_layers=args.max_layers, units=args.units,
                              batch_sizes=args.batch_sizes, dropout=args.dropout_range,
                              learning_rate=args.learning_rate_range),
            base=config_from_args(args))
        tuner = search(settings, args.tuner_dir, overwrite=args.overwrite)
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
