"""Model quality on unseen test sessions: the default LSTM against its peers, over seeds.

Generates a stand-in data set (train at --scale, the full test split at the same
scale, with test_labels.csv), preprocesses it twice with the project's own Beam
job (validation by time blocks, and by held-out crews), then for every seed and
validation scheme:

* trains the default LSTM (`python -m trainer train`, plus --trainer-args), and
  scores `python -m trainer predict` with each --priors choice against the labels
  (PRIOR, at predict's default --balance, or PRIOR@BALANCE);
* the gradient-boosting peer (bench/peer_gbm.py) on the same data and split, once
  (it is deterministic);
* the band-power linear baseline (bench/baseline_bandpower.py) on the same
  validation windows, also without the slow channels' levels (which the LSTM does
  not see);
* the constant training prior (every row gets the training rows' class shares).

Prints a table of mean and spread over the seeds (test log loss overall and
balanced, balanced validation log loss) and writes WORK/quality.json and
WORK/quality.md.  Steps whose output exists are reused, so a run can be resumed;
--repredict scores the trained runs again (after a change to predict).

    python bench/bench_quality.py --work bench-out/quality                # scale 0.1, seeds 0-5
    python bench/bench_quality.py --work bench-out/quality-full --scale 1 --seeds 0,1,2
    python bench/bench_quality.py --work /tmp/q --scale 0.02 --seeds 0   # a quick look

The generator lays the LOFT events out on the scaled session, so below scale 1 they
are shorter than real ones (at 0.1: B and D 2 s, C 3-9 s, against B 15 s, D 5-10 s,
C 30-90 s at scale 1) while training blocks keep their full length: scale 1
is the faithful test, scale 0.1 a harder and faster one (about 20 min against 60).

Targets (issue 10), judged with predict's default prior and balance: the default
LSTM's test log loss <= 0.8x the GBM peer's, overall and balanced (bar 1.0x); its
balanced validation log loss below the band-power baseline's, on time blocks and on
held-out crews.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import baseline_bandpower  # noqa: E402
import peer_gbm  # noqa: E402
from measure import measure  # noqa: E402

from trainer import record_spec as spec  # noqa: E402
from trainer.prior import DEFAULT_BALANCE, DEFAULT_PRIOR  # noqa: E402
from trainer.score import score  # noqa: E402

SCHEMES = {"time-blocks": [], "holdout-crews": ["--holdout-crews", "3,7"]}
TARGET_RATIO, BAR_RATIO = 0.8, 1.0
PRIOR_CHOICES = "bbse,train,em,bbse@0,train@0,em@0,none"


def predict_options(choice: str) -> list[str]:
    """predict's --prior and --balance for a --priors entry: PRIOR (at predict's default
    balance) or PRIOR@BALANCE; `none` moves nothing, so it takes no balance."""
    prior, at, balance = choice.partition("@")
    if prior == "none":
        return ["--prior", prior]
    return ["--prior", prior, "--balance", balance if at else f"{DEFAULT_BALANCE:g}"]


def run_checked(command: list[str], what: str) -> dict:
    """Runs a project command; returns wall time, peak memory and its last stdout line."""
    result = measure(command)
    if result.returncode:
        raise SystemExit(f"{what} failed (exit {result.returncode}): {shlex.join(command)}\n"
                         + result.stderr[-3000:])
    lines = result.stdout.strip().splitlines()
    return {"seconds": round(result.seconds, 1), "peak_rss_mb": result.peak_rss_mb,
            "last_line": lines[-1] if lines else ""}


def generate(work: str, scale: float, data_seed: int) -> str:
    raw = os.path.join(work, "raw")
    if not os.path.exists(os.path.join(raw, "test_labels.csv")):
        run_checked([sys.executable, "-m", "beam_preprocess.synth", "--out", raw, "--scale",
                     str(scale), "--seed", str(data_seed), "--splits", "train,test"], "generate")
    return raw


def preprocess(work: str, raw: str, scheme: str, window: Optional[int], data_seed: int) -> str:
    out = os.path.join(work, "data", scheme)
    if not os.path.exists(os.path.join(out, spec.MANIFEST_NAME)):
        command = [sys.executable, "-m", "beam_preprocess", "--train", os.path.join(raw, "train.csv"),
                   "--test", os.path.join(raw, "test.csv"), "--output", out, "--scale-by", "pilot",
                   "--seed", str(data_seed), "--overwrite", *SCHEMES[scheme]]
        if window:
            command += ["--window", str(window)]
        run_checked(command, f"preprocess ({scheme})")
    return out


def lstm(work: str, data_dir: str, labels: str, scheme: str, seed: int, trainer_args: list[str],
         priors: list[str], repredict: bool = False) -> dict:
    """Trains the LSTM and scores its submission under each prior choice
    (predict_options); with `repredict`, a run trained before is scored again (after
    a change to predict)."""
    job = os.path.join(work, "lstm", scheme, f"seed{seed}")
    result_path = job + ".json"
    if os.path.exists(result_path):
        with open(result_path) as f:
            result = json.load(f)
        if not repredict:
            return result
    else:
        trained = run_checked([sys.executable, "-m", "trainer", "train", "--data", data_dir,
                               "--job-dir", job, "--seed", str(seed), *trainer_args], "train")
        run = json.loads(trained["last_line"])["run_dir"]
        with open(os.path.join(run, "metrics.json")) as f:
            best = json.load(f)["best"]
        result = {"train_seconds": trained["seconds"],
                  "train_peak_rss_mb": trained["peak_rss_mb"], "best_epoch": best["epoch"],
                  "temperature": best["temperature"],
                  "valid_balanced_log_loss": best["calibrated"]["balanced_log_loss"]}
    result["test"] = {}
    for prior in priors:
        submission = os.path.join(job, f"submission-{prior}.csv")
        # The job directory: predict takes the run it names as LATEST.
        predicted = run_checked([sys.executable, "-m", "trainer", "predict", "--run", job,
                                 "--data", data_dir, "--out", submission,
                                 *predict_options(prior)], "predict")
        metrics = score(submission, labels)
        result["test"][prior] = {"log_loss": metrics["log_loss"],
                                 "balanced_log_loss": metrics["balanced_log_loss"],
                                 "stride": json.loads(predicted["last_line"])["stride"],
                                 "predict_seconds": predicted["seconds"],
                                 "predict_peak_rss_mb": predicted["peak_rss_mb"]}
        os.remove(submission)
    with open(result_path, "w") as f:
        json.dump(result, f, indent=2)
    return result


def summarise(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values)), 4),
            "values": [round(v, 4) for v in values]}


def table(results: dict, priors: list[str]) -> str:
    """Markdown: one row per model, mean ± sd over seeds, per validation scheme."""
    lines = ["| validation | model | test log loss | test balanced | valid balanced |",
             "|---|---|---|---|---|"]

    def cell(s: Optional[dict]) -> str:
        return "" if s is None else f"{s['mean']:.3f} ± {s['sd']:.3f}"

    for scheme, r in results["schemes"].items():
        rows = [("LSTM, " + " ".join(predict_options(p)), r["lstm"][p]) for p in priors]
        rows += [("GBM peer (LightGBM)", r["gbm"]), ("band-power linear baseline", r["baseline"]),
                 ("band-power baseline without levels", r["baseline_without_levels"]),
                 ("constant training prior", r["constant"])]
        for name, s in rows:
            lines.append(f"| {scheme} | {name} | {cell(s.get('log_loss'))} | "
                         f"{cell(s.get('balanced_log_loss'))} | {cell(s.get('valid_balanced'))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="working directory (reused when rerun)")
    parser.add_argument("--scale", type=float, default=0.1, help="data scale; default 0.1")
    parser.add_argument("--seeds", default="0,1,2,3,4,5",
                        help="training seeds; default 0,1,2,3,4,5 (the spread between seeds "
                             "is as large as the differences between settings)")
    parser.add_argument("--data-seed", type=int, default=0, help="generator and split seed")
    parser.add_argument("--window", type=int, default=None,
                        help="the Beam job's --window (default: its own default)")
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help=f"validation schemes; default {','.join(SCHEMES)}")
    parser.add_argument("--priors", default=PRIOR_CHOICES,
                        help="predict choices scored: --prior, at predict's default --balance "
                             f"({DEFAULT_BALANCE:g}), or PRIOR@BALANCE; default {PRIOR_CHOICES}")
    parser.add_argument("--repredict", action="store_true",
                        help="score the runs trained before again with today's predict "
                             "(after a change to predict; training is not repeated)")
    parser.add_argument("--trainer-args", default="",
                        help="extra `trainer train` options, e.g. \"--front-end raw\"")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    priors = args.priors.split(",")
    trainer_args = shlex.split(args.trainer_args)

    raw = generate(args.work, args.scale, args.data_seed)
    labels = os.path.join(raw, "test_labels.csv")
    results = {"scale": args.scale, "seeds": seeds, "trainer_args": trainer_args, "schemes": {}}
    for scheme in args.schemes.split(","):
        data_dir = preprocess(args.work, raw, scheme, args.window, args.data_seed)
        runs = [lstm(args.work, data_dir, labels, scheme, s, trainer_args, priors, args.repredict)
                for s in seeds]
        # Once per scheme: the peer has no bagging, so its seed changes nothing (and at
        # scale 1 one fit and prediction takes ~5 min).
        gbm = [peer_gbm.run(data_dir, labels=labels, seed=seeds[0])]
        baseline = [baseline_bandpower.run(data_dir, seed=s) for s in seeds]
        without_levels = [baseline_bandpower.run(data_dir, seed=s, levels=False) for s in seeds]
        results["schemes"][scheme] = {
            "lstm": {p: {"log_loss": summarise([r["test"][p]["log_loss"] for r in runs]),
                         "balanced_log_loss": summarise(
                             [r["test"][p]["balanced_log_loss"] for r in runs]),
                         "valid_balanced": summarise([r["valid_balanced_log_loss"] for r in runs])}
                     for p in priors},
            "lstm_runs": runs,
            "gbm": {"log_loss": summarise([g["test"]["log_loss"] for g in gbm]),
                    "balanced_log_loss": summarise([g["test"]["balanced_log_loss"] for g in gbm]),
                    # on the trainer's balanced validation windows, like the LSTM's figure
                    "valid_balanced": summarise(
                        [g["valid"]["windows_balanced_log_loss"] for g in gbm])},
            "gbm_runs": gbm,
            "baseline": {"valid_balanced": summarise(
                [b["valid_balanced_log_loss"] for b in baseline])},
            "baseline_without_levels": {"valid_balanced": summarise(
                [b["valid_balanced_log_loss"] for b in without_levels])},
            # the same for every seed: the training rows' class shares for every row
            "constant": {k: summarise([gbm[0]["prior"]["test"][k]])
                         for k in ("log_loss", "balanced_log_loss")},
        }
        r = results["schemes"][scheme]
        # The targets are about what `predict` does by default (a bare prior takes the
        # default balance).
        judged = DEFAULT_PRIOR if DEFAULT_PRIOR in priors else priors[0]
        ratios = {k: r["lstm"][judged][k]["mean"] / r["gbm"][k]["mean"]
                  for k in ("log_loss", "balanced_log_loss")}
        r["targets"] = {
            "prior": judged,
            "best_prior_overall": min(priors, key=lambda p: r["lstm"][p]["log_loss"]["mean"]),
            "lstm_over_gbm": {k: round(v, 3) for k, v in ratios.items()},
            "target_met": all(v <= TARGET_RATIO for v in ratios.values()),
            "bar_met": all(v <= BAR_RATIO for v in ratios.values()),
            "valid_below_baseline": (r["lstm"][judged]["valid_balanced"]["mean"]
                                     < r["baseline"]["valid_balanced"]["mean"]),
        }
    markdown = table(results, priors)
    with open(os.path.join(args.work, "quality.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.work, "quality.md"), "w") as f:
        f.write(markdown + "\n")
    print(markdown)
    print(json.dumps({s: r["targets"] for s, r in results["schemes"].items()}, indent=2))


if __name__ == "__main__":
    main()
