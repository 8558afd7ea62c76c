"""Benchmark `make demo`: its wall time and peak memory, and the scores it ends with.

    python bench/bench_demo.py [--demo-dir demo-out] [--json bench/results/demo.json]

Runs `make demo DEMO_DIR=...` from the repository root once (bench/measure.py: wall
time, peak RSS of the process tree, CPU time), then reads what the demo wrote: the
LSTM's score (score.json), the peer's and the constant training prior's
(gbm.json), and the training run's exported epoch.  Run it after `make venv`, so
the virtualenv's creation is not part of the figure.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional

import measure
import provenance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def scores(demo_dir: str) -> dict:
    lstm = read_json(os.path.join(demo_dir, "score.json"))
    gbm = read_json(os.path.join(demo_dir, "gbm.json"))

    def pair(result: dict) -> dict:
        return {"log_loss": round(result["log_loss"], 4),
                "balanced_log_loss": round(result["balanced_log_loss"], 4)}
    return {"lstm": pair(lstm), "peer": pair(gbm["test"]), "constant": pair(gbm["prior"]["test"])}


def main(argv: Optional[list[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--demo-dir", default="demo-out", help="the demo's DEMO_DIR")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    demo_dir = os.path.abspath(args.demo_dir)
    run = measure.measure_checked(["make", "-C", REPO, "demo", f"DEMO_DIR={demo_dir}"],
                                  "bench_demo: make demo")
    job = os.path.join(demo_dir, "job")
    with open(os.path.join(job, "LATEST")) as f:
        run_info = read_json(os.path.join(job, "runs", f.read().strip(), "run.json"))
    result = {"seconds": round(run.seconds, 1), "peak_rss_mb": run.peak_rss_mb,
              "cpu_seconds": round(run.cpu_seconds, 1),
              "exported_epoch": run_info["exported_epoch"], "scores": scores(demo_dir)}
    return provenance.publish(result, args.json, __file__, argv)


if __name__ == "__main__":
    main()
