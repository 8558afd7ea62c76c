"""Benchmark beam_preprocess against bench/pandas_reference.py on generated Kaggle-format CSVs.

For every scale of --scales (default 0.25 and 1.0) it generates the CSVs (once:
they are kept in WORK/data-<scale> and reused), then runs one after the other,
each as a child process measured by bench/measure.py (wall time, peak RSS of the
whole process tree, CPU time):

  beam   python -m beam_preprocess --train train.csv --output ... [--beam-args]
  pandas python bench/pandas_reference.py --train train.csv --output ...

and the same for test.csv with each engine's own training statistics (--stats).
Both must agree (rows, records, rows and windows per split and class; statistics
to 1e-9 relative) or the bench exits 1; records with identical bytes are counted
too (each engine's own float64 statistics may differ in the last bit, which can
move a scaled value by one float32 ulp).  The Beam job runs on its default runner
(FnApiRunner with one in-process worker thread per core, at most 4, rows spilled to
local files; `--beam-args "--direct_num_workers 1"` gives the single worker of
before issue 27, try others likewise).  It prints one table of every run, one of
Beam next to pandas (wall and CPU ratios, the load average around each run: other
processes on the machine inflate wall times, and a 2-core machine shared with a
busy process gives the job about one core) and the targets as JSON.

Targets, judged at scale 1.0 (2 cores): issue 3: train.csv in <= 10 min, <= 3x
the pandas wall time, TFRecords <= 1.5x the rows as float32.  Issue 12: peak
memory of test.csv <= 4 GB (bar 6 GB) and of train.csv <= 3 GB; the peak at 1.0
<= 1.3x the peak at the smallest scale, per split; test.csv in <= 1.5x the pandas
wall time and <= 390.6 s (the in-memory job's time before issue 12).  Issue 27:
train.csv and test.csv each in <= 1.0x the pandas wall time, in the same run.

    python bench/bench_preprocess.py --work bench-out/preprocess     # 0.25 and 1.0
    python bench/bench_preprocess.py --scales 0.05 --splits train
    python bench/bench_preprocess.py --scales 0.05 --beam-args "--spill off"
"""
from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import os
import shlex
import sys
from typing import Optional

import provenance
from measure import measure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from beam_preprocess.output_reader import iter_tfrecords  # noqa: E402
REFERENCE = os.path.join(REPO, "bench", "pandas_reference.py")
TARGET_SECONDS = 600.0
TARGET_RATIO = 3.0
TARGET_SIZE_RATIO = 1.5
TARGET_PEAK_MB = {"train": 3 * 1024, "test": 4 * 1024}   # issue 12 (test bar: 6 GB)
TARGET_PEAK_GROWTH = 1.3       # peak at scale 1.0 over the peak at the smallest scale
TARGET_TEST_RATIO = 1.5        # test wall time over the pandas reference's
TARGET_TEST_SECONDS = 390.6    # the in-memory job's full-scale test time before issue 12
TARGET_BOTH_CORES_RATIO = 1.0  # issue 27: train and test wall time over the pandas reference's
BYTES_PER_ROW_FLOAT32 = 23 * 4
STATS_RTOL = 1e-9
ENGINES = ("beam", "pandas")


def child_env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return env


def generate(out: str, scale: float, seed: int, splits: list[str]) -> str:
    """Generated CSVs (not timed: bench_synth.py measures the generator)."""
    command = [sys.executable, "-m", "beam_preprocess.synth", "--out", out, "--scale", str(scale),
               "--seed", str(seed), "--splits", ",".join(splits)]
    run = measure(command, env=child_env())
    if run.returncode != 0:
        raise SystemExit(f"generator failed (exit {run.returncode}):\n{run.stderr[-4000:]}")
    return out


def engine_command(engine: str, split: str, csv_path: str, output: str,
                   stats: Optional[str], beam_args: list[str]) -> list[str]:
    inputs = ["--train" if split == "train" else "--test", csv_path]
    if stats:
        inputs += ["--stats", stats]
    common = inputs + ["--output", output, "--overwrite"]
    if engine == "beam":
        return [sys.executable, "-m", "beam_preprocess", *common, *beam_args]
    return [sys.executable, REFERENCE, *common]


def summary_path(engine: str, output: str) -> str:
    return os.path.join(output, "manifest.json" if engine == "beam" else "reference.json")


def shard_files(output: str) -> list[str]:
    return sorted(glob.glob(os.path.join(output, "*", "part-*.tfrecord.gz")))


def run_engine(engine: str, split: str, csv_path: str, output: str,
               stats: Optional[str], beam_args: list[str]) -> dict:
    command = engine_command(engine, split, csv_path, output, stats, beam_args)
    print(f"# {engine} {split}: {shlex.join(command)}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()[0]
    run = measure(command, env=child_env())
    load_after = os.getloadavg()[0]
    if run.returncode != 0:
        raise SystemExit(f"{engine} failed on {split} (exit {run.returncode}):\n{run.stderr[-4000:]}")
    with open(summary_path(engine, output)) as f:
        summary = json.load(f)
    rows = summary["rows"]
    tfrecord_bytes = sum(os.path.getsize(p) for p in shard_files(output))
    return {
        "engine": engine, "split": split, "command": shlex.join(command),
        "rows_in": rows["in"], "rows_written": rows["written"],
        "rows_quarantined": rows["quarantined"],
        "seconds": round(run.seconds, 2), "rows_per_s": round(rows["in"] / run.seconds),
        "peak_rss_mb": run.peak_rss_mb, "cpu_seconds": round(run.cpu_seconds, 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "tfrecord_mb": round(tfrecord_bytes / 1024 ** 2, 1),
        "size_ratio": round(tfrecord_bytes / (rows["written"] * BYTES_PER_ROW_FLOAT32), 3),
        "output": output, "summary": summary,
    }


def record_digests(output: str) -> collections.Counter:
    """Multiset of (split, md5 of the record bytes) of an output."""
    return collections.Counter(
        (os.path.basename(os.path.dirname(path)), hashlib.md5(record).hexdigest())
        for path in shard_files(output) for record in iter_tfrecords(path))


def _relative_difference(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / max(abs(x), 1e-300) for x, y in zip(a, b))


def compare(beam: dict, pandas: dict) -> dict:
    """Differences between the Beam manifest and the reference summary of one split."""
    counts = {}
    for split in sorted(set(beam["summary"]["splits"]) | set(pandas["summary"]["splits"])):
        entries = [{k: v for k, v in r["summary"]["splits"].get(split, {}).items() if k != "shards"}
                   for r in (beam, pandas)]
        counts[split] = entries[0] == entries[1] or {"beam": entries[0], "pandas": entries[1]}
    stats = [r["summary"]["stats"] for r in (beam, pandas)]
    stats_diff = max(_relative_difference(stats[0][part]["global"], stats[1][part]["global"])
                     for part in ("center", "scale"))
    digests = [record_digests(r["output"]) for r in (beam, pandas)]
    same_records = sum((digests[0] & digests[1]).values())
    # The reference counts no suspect rows (a last line without line end): the manifest's
    # rows.suspect (issue 11) is compared with 0.
    beam_rows = {"suspect": 0, **beam["summary"]["rows"]}
    result = {
        "split": beam["split"],
        "rows_equal": beam_rows == {"suspect": 0, **pandas["summary"]["rows"]},
        "split_counts_equal": all(v is True for v in counts.values()),
        "stats_max_relative_difference": stats_diff,
        "records": sum(digests[0].values()),
        "identical_records": same_records,
    }
    result["agree"] = (result["rows_equal"] and result["split_counts_equal"]
                       and stats_diff <= STATS_RTOL and sum(digests[1].values()) == result["records"])
    if not result["split_counts_equal"]:
        result["split_counts"] = counts
    return result


def check_targets(runs: dict) -> dict:
    """Issues 3 and 12's targets on the Beam runs, keyed (engine, split, scale); final
    only when scale 1.0 was run."""
    scales = sorted({scale for _, _, scale in runs})
    top, low = scales[-1], scales[0]
    checks = {"scale": top, "final": top == 1.0}
    beam = {split: runs[("beam", split, top)] for _, split, scale in runs if scale == top}
    pandas = {split: runs[("pandas", split, top)] for split in beam}
    if "train" in beam:
        checks["train_wall_le_10_min"] = beam["train"]["seconds"] <= TARGET_SECONDS
        checks["train_beam_over_pandas"] = round(
            beam["train"]["seconds"] / pandas["train"]["seconds"], 2)
        checks["train_ratio_le_3"] = checks["train_beam_over_pandas"] <= TARGET_RATIO
        checks["train_ratio_le_1"] = checks["train_beam_over_pandas"] <= TARGET_BOTH_CORES_RATIO
        checks["train_size_ratio_le_1_5"] = beam["train"]["size_ratio"] <= TARGET_SIZE_RATIO
    if "test" in beam:
        accounted = beam["test"]["rows_written"] + beam["test"]["rows_quarantined"]
        checks["test_completed"] = beam["test"]["rows_in"] > 0 and accounted == beam["test"]["rows_in"]
        checks["test_beam_over_pandas"] = round(
            beam["test"]["seconds"] / pandas["test"]["seconds"], 2)
        checks["test_ratio_le_1_5"] = checks["test_beam_over_pandas"] <= TARGET_TEST_RATIO
        checks["test_ratio_le_1"] = checks["test_beam_over_pandas"] <= TARGET_BOTH_CORES_RATIO
        checks["test_wall_le_390_6_s"] = beam["test"]["seconds"] <= TARGET_TEST_SECONDS
    for split, run in beam.items():
        checks[f"{split}_peak_le_{TARGET_PEAK_MB[split] // 1024}_gb"] = (
            run["peak_rss_mb"] <= TARGET_PEAK_MB[split])
        if top != low:
            growth = round(run["peak_rss_mb"] / runs[("beam", split, low)]["peak_rss_mb"], 2)
            checks[f"{split}_peak_growth_{low}_to_{top}"] = growth
            checks[f"{split}_peak_growth_le_1_3"] = growth <= TARGET_PEAK_GROWTH
    checks["all_met"] = all(v for k, v in checks.items() if isinstance(v, bool) and k != "final")
    return checks


def markdown(runs: dict) -> str:
    lines = ["| split | engine | scale | rows | wall s | rows/s | peak RSS MB | CPU s | TFRecord MB "
             "| x float32 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (_, _, scale), r in runs.items():
        lines.append(f"| {r['split']} | {r['engine']} | {scale} | {r['rows_in']:,} | {r['seconds']} "
                     f"| {r['rows_per_s']:,} | {r['peak_rss_mb']} | {r['cpu_seconds']} "
                     f"| {r['tfrecord_mb']} | {r['size_ratio']} |")
    lines += ["", "| split | scale | Beam wall s | pandas wall s | **Beam / pandas** | Beam CPU s "
              "| pandas CPU s | CPU ratio | Beam peak MB | pandas peak MB | load average (Beam; pandas) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (engine, split, scale), beam in runs.items():
        if engine == "beam":
            ref = runs[("pandas", split, scale)]
            load = "; ".join("-".join(f"{x:.1f}" for x in r["load_average"]) for r in (beam, ref))
            lines.append(f"| {split} | {scale} | {beam['seconds']} | {ref['seconds']} "
                         f"| **{ratio(beam, ref, 'seconds'):.2f}x** | {beam['cpu_seconds']} "
                         f"| {ref['cpu_seconds']} | {ratio(beam, ref, 'cpu_seconds'):.2f}x "
                         f"| {beam['peak_rss_mb']} | {ref['peak_rss_mb']} | {load} |")
    return "\n".join(lines)


def ratio(beam: dict, pandas: dict, key: str) -> float:
    return beam[key] / max(pandas[key], 1e-9)


def dataset(work: str, scale: float, seed: int, splits: list[str]) -> str:
    """WORK/data-<scale>, generated unless it already holds the CSVs of every split."""
    out = os.path.join(work, f"data-{scale:g}")
    if not all(os.path.exists(os.path.join(out, f"{split}.csv")) for split in splits):
        generate(out, scale, seed, splits)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--scales", default="0.25,1.0",
                        help="generator scales, comma-separated (1.0 = real size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", default="train,test", choices=("train", "train,test"))
    parser.add_argument("--work", default="bench-out/preprocess",
                        help="generated data (data-<scale>, reused) and outputs")
    parser.add_argument("--beam-args", default="", help="extra Beam job options, e.g. "
                        "'--spill off' or '--direct_num_workers 1' (one worker, as before "
                        "issue 27)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    splits = args.splits.split(",")
    scales = sorted(float(s) for s in args.scales.split(","))
    os.makedirs(args.work, exist_ok=True)
    beam_args = shlex.split(args.beam_args)
    load_before = os.getloadavg()
    runs: dict = {}
    agreement, data = [], {}
    for scale in scales:
        data[scale] = dataset(args.work, scale, args.seed, splits)
        for split in splits:
            csv_path = os.path.join(data[scale], f"{split}.csv")
            for engine in ENGINES:
                stats = (summary_path(engine, runs[(engine, "train", scale)]["output"])
                         if split == "test" else None)
                output = os.path.join(args.work, f"{engine}-{split}-{scale:g}")
                runs[(engine, split, scale)] = run_engine(engine, split, csv_path, output, stats,
                                                          beam_args)
            beam_run, pandas_run = runs[("beam", split, scale)], runs[("pandas", split, scale)]
            agreement.append(compare(beam_run, pandas_run) | {"scale": scale})
            print(f"# {split} {scale:g}: Beam / pandas wall {ratio(beam_run, pandas_run, 'seconds'):.2f}x "
                  f"({beam_run['seconds']} s / {pandas_run['seconds']} s), CPU "
                  f"{ratio(beam_run, pandas_run, 'cpu_seconds'):.2f}x, load average "
                  f"{beam_run['load_average'][0]}-{pandas_run['load_average'][1]}",
                  file=sys.stderr, flush=True)
    result = {
        "scales": scales, "data": {str(k): os.path.abspath(v) for k, v in data.items()},
        "beam_args": args.beam_args, "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "runs": [{k: v for k, v in r.items() if k != "summary"} | {"scale": scale}
                 for (_, _, scale), r in runs.items()],
        "agreement": agreement, "targets": check_targets(runs),
    }
    print(markdown(runs))
    provenance.publish(result, args.json, __file__, argv)
    if not all(a["agree"] for a in agreement):
        print("beam and pandas outputs disagree: see 'agreement'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
