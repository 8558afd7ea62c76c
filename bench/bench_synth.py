"""Benchmark the stand-in generator: wall time, peak memory, rows/s and bytes per split.

Runs `python -m beam_preprocess.synth` once per split in a child process and samples
the RSS of the child's process tree (bench/measure.py).  Target (issue 2):
full-scale train.csv (~1.2 GB) in at most 3 minutes with peak memory under 2 GB.

    python bench/bench_synth.py --out bench-out                  # scale 1.0, train
    python bench/bench_synth.py --out bench-out --scale 0.05 --splits train,test
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import provenance
from measure import measure

TARGET_SECONDS = 180.0
TARGET_PEAK_BYTES = 2 * 1024 ** 3


def run_split(out: str, split: str, scale: float, seed: int, compress: bool) -> dict:
    """Generate one split; return its measurements."""
    command = [sys.executable, "-m", "beam_preprocess.synth", "--out", out, "--scale", str(scale),
               "--seed", str(seed), "--splits", split] + (["--gzip"] if compress else [])
    run = measure(command)
    if run.returncode != 0:
        raise SystemExit(f"generator failed on split {split} (exit {run.returncode}):\n{run.stderr}")
    files = json.loads(run.stdout)
    seconds = run.seconds
    rows = max(entry["rows"] for entry in files.values())
    return {
        "split": split, "scale": scale, "seconds": round(seconds, 2), "rows": rows,
        "rows_per_s": round(rows / seconds), "bytes": sum(entry["bytes"] for entry in files.values()),
        "mb_per_s": round(sum(entry["bytes"] for entry in files.values()) / seconds / 1e6, 1),
        "peak_rss_mb": run.peak_rss_mb, "files": files,
    }


def markdown(results: list[dict]) -> str:
    lines = ["| split | scale | rows | bytes | seconds | rows/s | MB/s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['split']} | {r['scale']} | {r['rows']:,} | {r['bytes']:,} | {r['seconds']} "
                     f"| {r['rows_per_s']:,} | {r['mb_per_s']} | {r['peak_rss_mb']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", default="bench-out", help="directory for the generated files")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", default="train", help="comma-separated: train,test")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = [run_split(args.out, split.strip(), args.scale, args.seed, args.gzip)
               for split in args.splits.split(",") if split.strip()]
    for result in results:
        if result["split"] == "train" and args.scale == 1.0:
            result["meets_target"] = (result["seconds"] <= TARGET_SECONDS
                                      and result["peak_rss_mb"] * 1024 ** 2 < TARGET_PEAK_BYTES)
    print(markdown(results))
    provenance.publish({"splits": results}, args.json, __file__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
