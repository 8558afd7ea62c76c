"""Prints the demo's submission score next to its two yardsticks.

    python bench/demo_scores.py --lstm demo-out/score.json --gbm demo-out/gbm.json

`--lstm` is what `python -m trainer score` printed for the LSTM's submission;
`--gbm` is what bench/peer_gbm.py wrote with --labels (its own test scores and the
constant training prior's).  One line per model: test log loss, overall and
balanced (mean per class).
"""
from __future__ import annotations

import argparse
import json


def rows(lstm: dict, gbm: dict) -> list[tuple[str, float, float]]:
    return [("LSTM (trainer predict)", lstm["log_loss"], lstm["balanced_log_loss"]),
            ("GBM peer (bench/peer_gbm.py)", gbm["test"]["log_loss"],
             gbm["test"]["balanced_log_loss"]),
            ("constant training prior", gbm["prior"]["test"]["log_loss"],
             gbm["prior"]["test"]["balanced_log_loss"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lstm", required=True, help="JSON printed by `trainer score`")
    parser.add_argument("--gbm", required=True, help="JSON written by peer_gbm.py --json")
    args = parser.parse_args()
    with open(args.lstm) as f, open(args.gbm) as g:
        table = rows(json.load(f), json.load(g))
    print(f"{'test sessions':32} {'log loss':>9} {'balanced':>9}")
    for name, overall, balanced in table:
        print(f"{name:32} {overall:9.3f} {balanced:9.3f}")


if __name__ == "__main__":
    main()
