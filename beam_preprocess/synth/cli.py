"""Command line of the stand-in generator: `python -m beam_preprocess.synth`."""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from beam_preprocess.synth import physiology
from beam_preprocess.synth.files import SPLITS, generate
from beam_preprocess.synth.layout import EVENTS


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pilotstate-synth", allow_abbrev=False,
        description="Write a stand-in for the Kaggle 'Reducing Commercial Aviation Fatalities' "
                    "CSVs: train.csv, test.csv and test_labels.csv.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies every session's duration; 1.0 gives the real row counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help="comma-separated subset of: train,test")
    parser.add_argument("--physiology", default=physiology.DEFAULT, choices=list(physiology.PHYSIOLOGIES),
                        metavar="NAME",
                        help="where the states show in the signals (default %(default)s): "
                             + "; ".join(f"{name}: {p.summary}"
                                         for name, p in physiology.PHYSIOLOGIES.items()))
    parser.add_argument("--events", default="scaled", choices=EVENTS,
                        help="scaled (default): events shrink with --scale; real: events keep "
                             "their real length and a shorter session holds fewer of them")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Generate the files; print a JSON summary (rows and bytes per file)."""
    args = parse_args(argv)
    splits = [name.strip() for name in args.splits.split(",") if name.strip()]
    try:
        summary = generate(args.out, args.scale, args.seed, splits, args.gzip,
                           args.physiology, args.events)
    except ValueError as error:
        raise SystemExit(f"pilotstate-synth: {error}")
    print(json.dumps(summary, sort_keys=True))
    return 0
