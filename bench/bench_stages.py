"""Benchmark the trainer's stages on preprocessed data: train, predict, score, the peer.

    python bench/bench_stages.py --data DATA --labels RAW/test_labels.csv --work bench-out/stages \\
        [--peer] [--json bench/results/stages-full.json]

DATA is what `python -m beam_preprocess` wrote (bench/bench_preprocess.py times that
stage).  Each stage runs once with the project's defaults, in a child process, with
bench/measure.py's wall time, peak RSS of the process tree and CPU time; the JSON
adds the run's exported epoch, predict's own split of its time and windows/s, the
test log loss of the LSTM (and with --peer, of bench/peer_gbm.py and of the constant
training prior).  Outputs go under WORK (cleared of this bench's earlier outputs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Optional

import measure
import provenance


def measured(command: list[str], what: str) -> tuple[measure.Measurement, dict]:
    """Runs a stage; returns its measurement and the JSON its stdout ends with."""
    print(f"== {what}: {' '.join(command)}", file=sys.stderr, flush=True)
    run = measure.measure_checked(command, f"bench_stages: {what}")
    lines = [line for line in run.stdout.strip().splitlines() if line.strip()]
    text = run.stdout.strip()
    try:
        printed = json.loads(text)
    except json.JSONDecodeError:
        printed = json.loads(lines[-1]) if lines else {}
    return run, printed


def figures(run: measure.Measurement) -> dict:
    return {"seconds": round(run.seconds, 1), "peak_rss_mb": run.peak_rss_mb,
            "cpu_seconds": round(run.cpu_seconds, 1)}


def train(work: str, data: str, trainer_args: list[str]) -> dict:
    job = os.path.join(work, "job")
    run, printed = measured([sys.executable, "-m", "trainer", "train", "--data", data,
                             "--job-dir", job, *trainer_args], "train")
    with open(os.path.join(printed["run_dir"], "run.json")) as f:
        run_info = json.load(f)
    with open(os.path.join(printed["run_dir"], "metrics.json")) as f:
        metrics = json.load(f)
    return {**figures(run), "exported_epoch": run_info["exported_epoch"],
            "steps": metrics["steps"], "train_step_seconds": metrics["seconds"]["train_steps"],
            "valid_seconds": metrics["seconds"]["valid"],
            "valid_balanced_log_loss": round(metrics["best"]["calibrated"]["balanced_log_loss"], 4)}


def predict(work: str, data: str) -> dict:
    submission = os.path.join(work, "submission.csv")
    run, summary = measured([sys.executable, "-m", "trainer", "predict", "--run",
                             os.path.join(work, "job"), "--data", data, "--out", submission],
                            "predict")
    return {**figures(run), "rows": summary["rows"], "windows": summary["windows"],
            "rows_per_second": round(summary["rows"] / run.seconds),
            "model_windows_per_second": summary["model_windows_per_second"],
            "split_seconds": summary["seconds"]}


def score(work: str, labels: str) -> dict:
    run, scores = measured([sys.executable, "-m", "trainer", "score", "--submission",
                            os.path.join(work, "submission.csv"), "--labels", labels], "score")
    return {**figures(run), "log_loss": round(scores["log_loss"], 4),
            "balanced_log_loss": round(scores["balanced_log_loss"], 4),
            "per_class_log_loss": {c: round(v["log_loss"], 4)
                                   for c, v in scores["per_class"].items()}}


def peer(work: str, data: str, labels: str) -> dict:
    result = os.path.join(work, "gbm.json")
    run, _ = measured([sys.executable, os.path.join(os.path.dirname(__file__), "peer_gbm.py"),
                       "--data", data, "--labels", labels, "--json", result,
                       "--out", os.path.join(work, "gbm-submission.csv")], "peer")
    with open(result) as f:
        gbm = json.load(f)
    return {**figures(run), "log_loss": round(gbm["test"]["log_loss"], 4),
            "balanced_log_loss": round(gbm["test"]["balanced_log_loss"], 4),
            "constant_log_loss": round(gbm["prior"]["test"]["log_loss"], 4)}


OUTPUTS = ("job", "submission.csv", "submission_session.png", "gbm.json", "gbm-submission.csv")


def clear(work: str) -> None:
    """Removes this bench's earlier outputs from WORK, and nothing else."""
    for name in OUTPUTS:
        path = os.path.join(work, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def main(argv: Optional[list[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data", required=True, help="beam_preprocess output (manifest.json)")
    parser.add_argument("--labels", required=True, help="test_labels.csv of the same test CSV")
    parser.add_argument("--work", default="bench-out/stages", help="this bench's outputs")
    parser.add_argument("--peer", action="store_true", help="also time bench/peer_gbm.py")
    parser.add_argument("--trainer-args", default="", help="extra `trainer train` options")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    for path, what in ((os.path.join(args.data, "manifest.json"), "--data"),
                       (args.labels, "--labels")):
        if not os.path.exists(path):
            parser.error(f"{what}: {path} does not exist")
    os.makedirs(args.work, exist_ok=True)
    clear(args.work)
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    result = {"data": os.path.abspath(args.data),
              "rows": {split: info["rows"] for split, info in manifest["splits"].items()},
              "load_average_before": [round(x, 2) for x in os.getloadavg()],
              "train": train(args.work, args.data, args.trainer_args.split()),
              "predict": predict(args.work, args.data),
              "score": score(args.work, args.labels)}
    if args.peer:
        result["peer"] = peer(args.work, args.data, args.labels)
    return provenance.publish(result, args.json, __file__, argv)


if __name__ == "__main__":
    main()
