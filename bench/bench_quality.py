"""Model quality across stand-in physiologies: the default LSTM against a peer that deserves the name.

Nobody knows where the pilots' states show in the real files, so a model is judged
on every stand-in physiology (`python -m beam_preprocess.synth --physiology NAME`),
with events at their real length (`--events real`: a shorter session holds fewer
events, not shorter ones).  For each physiology the bench generates train at
--scale and test at --test-scale (with test_labels.csv), preprocesses it with the
project's Beam job twice (validation by time blocks, and by held-out crews 3 and 7),
and for each validation:

* trains the default LSTM (`python -m trainer train` plus --trainer-args) once per
  seed, and scores `python -m trainer predict` under each --priors choice against
  the labels: `default` is predict's own defaults, `PRIOR` a --prior at predict's
  default --balance, `PRIOR@BALANCE` both;
* the gradient-boosting peer (bench/peer_gbm.py), once (it is deterministic);
* the band-power linear baseline (bench/baseline_bandpower.py, seed 0), on the
  LSTM's validation windows;
* the constant training prior (every row gets the training rows' class shares).

It prints one row per physiology and a last row with the WORST ratio of the LSTM's
test log loss to the peer's over physiologies and validations, the figure defaults
are chosen by; next to it, every peer's ratio to the constant prior, which must be
<= 0.9 for the peer to count as a yardstick.  It writes WORK/quality.json and
WORK/quality.md.  Every step whose output exists is reused, so a run can be resumed
and a rerun on the same work directory repeats nothing; --repredict scores the
trained runs again (after a change to predict).

    python bench/bench_quality.py --work bench-out/quality            # ~1 h on 2 cores
    python bench/bench_quality.py --work bench-out/quality-quick --quick   # development
    python bench/bench_quality.py --work /tmp/q --physiologies autonomic --seeds 0
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Callable, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import provenance  # noqa: E402
from measure import measure_checked  # noqa: E402

from beam_preprocess.options import PreprocessConfig  # noqa: E402
from beam_preprocess.synth import physiology  # noqa: E402
from trainer.prediction.prior import DEFAULT_BALANCE  # noqa: E402
from trainer.records import spec  # noqa: E402

SCHEMES = {"time-blocks": [], "holdout-crews": ["--holdout-crews", "3,7"]}
DEFAULT_CHOICE = "default"  # predict with no --prior or --balance: its own defaults
PRIOR_CHOICES = f"{DEFAULT_CHOICE},none"
PEER_OVER_CONSTANT_LIMIT = 0.9  # a peer above this is no yardstick
# The trainer validates on every validation window after every epoch; at 4-s windows
# that pass, not training, is most of a run's time (29,520 windows at scale 0.1).  The
# cap keeps the early-stopping signal's noise small (8,000 windows) at a third of it.
VALID_WINDOWS_PER_CLASS = 2000
QUICK = {"scale": 0.05, "test_scale": 0.1, "seeds": "0", "schemes": "time-blocks"}


def predict_options(choice: str) -> list[str]:
    """predict's --prior and --balance for a --priors entry: `default` (none: predict's
    own defaults), PRIOR (at predict's default balance) or PRIOR@BALANCE; `none` moves
    nothing, so it takes no balance."""
    if choice == DEFAULT_CHOICE:
        return []
    prior, at, balance = choice.partition("@")
    if prior == "none":
        return ["--prior", prior]
    return ["--prior", prior, "--balance", balance if at else f"{DEFAULT_BALANCE:g}"]


def run_checked(command: list[str], what: str) -> dict:
    """Runs a project command; returns wall time, peak memory and its last stdout line."""
    result = measure_checked(command, what)
    lines = result.stdout.strip().splitlines()
    return {"seconds": round(result.seconds, 1), "peak_rss_mb": result.peak_rss_mb,
            "last_line": lines[-1] if lines else ""}


def cached(path: str, compute: Callable[[], dict]) -> dict:
    """The JSON at `path`, or `compute()` written there first: a rerun repeats nothing."""
    if not os.path.exists(path):
        result = compute()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
    with open(path) as f:
        return json.load(f)


def generate(root: str, name: str, scale: float, test_scale: float, events: str,
             data_seed: int) -> str:
    """The stand-in CSVs of one physiology: train at `scale`, test at `test_scale`."""
    raw = os.path.join(root, "raw")
    for split, split_scale in (("train", scale), ("test", test_scale)):
        done = os.path.join(raw, "test_labels.csv" if split == "test" else "train.csv")
        if not os.path.exists(done):
            run_checked([sys.executable, "-m", "beam_preprocess.synth", "--out", raw,
                         "--scale", str(split_scale), "--seed", str(data_seed), "--splits", split,
                         "--physiology", name, "--events", events], f"generate {name} {split}")
    return raw


def preprocess(work: str, raw: str, scheme: str, window: Optional[int],
               valid_windows_per_class: Optional[int], data_seed: int) -> str:
    out = os.path.join(work, "data", scheme)
    if not os.path.exists(os.path.join(out, spec.MANIFEST_NAME)):
        command = [sys.executable, "-m", "beam_preprocess", "--train", os.path.join(raw, "train.csv"),
                   "--test", os.path.join(raw, "test.csv"), "--output", out, "--scale-by", "pilot",
                   "--seed", str(data_seed), "--overwrite", *SCHEMES[scheme]]
        if window:
            command += ["--window", str(window)]
        if valid_windows_per_class:
            command += ["--valid-windows-per-class", str(valid_windows_per_class)]
        run_checked(command, f"preprocess ({scheme})")
    with open(os.path.join(out, spec.MANIFEST_NAME)) as f:
        written = json.load(f)["window"]
    wanted = window or PreprocessConfig(output=out).window
    if written != wanted:  # reused data of another window would judge the wrong default
        raise SystemExit(f"{out} holds {written}-row windows, not the {wanted} asked for: give "
                         f"--window {written}, or another --work")
    return out


def lstm(work: str, data_dir: str, labels: str, scheme: str, seed: int, trainer_args: list[str],
         priors: list[str], repredict: bool = False) -> dict:
    """Trains the LSTM and scores its submission under each prior choice
    (predict_options); with `repredict`, a run trained before is scored again (after
    a change to predict)."""
    from trainer.prediction.score import score  # loads TensorFlow, which --help need not wait for

    job = os.path.join(work, "lstm", scheme, f"seed{seed}")
    result_path = job + ".json"
    if os.path.exists(result_path):
        with open(result_path) as f:
            result = json.load(f)
        if not repredict and set(priors) <= set(result["test"]):
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
    result["test"] = {} if repredict else result.get("test", {})
    for prior in priors:
        if prior in result["test"]:
            continue
        submission = os.path.join(job, f"submission-{prior}.csv")
        # The job directory: predict takes the run it names as LATEST.
        predicted = run_checked([sys.executable, "-m", "trainer", "predict", "--run", job,
                                 "--data", data_dir, "--out", submission, "--overwrite",
                                 *predict_options(prior)], "predict")
        metrics = score(submission, labels)
        result["test"][prior] = {"log_loss": metrics["log_loss"],
                                 "balanced_log_loss": metrics["balanced_log_loss"],
                                 "per_class_log_loss": {
                                     c: v["log_loss"] for c, v in metrics["per_class"].items()},
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


def scheme_results(root: str, raw: str, scheme: str, runs: list[dict],
                   args: argparse.Namespace) -> dict:
    """The trained LSTM runs and the yardsticks on one physiology's data under one
    validation scheme."""
    # Imported here, not at the top: both load TensorFlow, which --help need not wait for.
    import baseline_bandpower
    import peer_gbm

    labels = os.path.join(raw, "test_labels.csv")
    data_dir = os.path.join(root, "data", scheme)
    # The peer has no randomness left once its data are fixed: one fit per scheme.
    peer = cached(os.path.join(root, "peer", scheme + ".json"),
                  lambda: peer_gbm.run(data_dir, labels=labels, seed=args.seeds[0]))
    baseline = cached(os.path.join(root, "baseline", scheme + ".json"),
                      lambda: baseline_bandpower.run(data_dir, seed=0))
    lstm_summary = {
        p: {k: summarise([r["test"][p][k] for r in runs]) for k in ("log_loss", "balanced_log_loss")}
        for p in args.priors}
    for p in args.priors:
        lstm_summary[p]["valid_balanced"] = summarise([r["valid_balanced_log_loss"] for r in runs])
    return {
        "lstm": lstm_summary,
        "lstm_runs": runs,
        "peer": {"log_loss": peer["test"]["log_loss"],
                 "balanced_log_loss": peer["test"]["balanced_log_loss"],
                 "per_class_log_loss": peer["test"]["per_class_log_loss"],
                 "trees": peer["trees"], "seconds": peer["seconds"]["total"],
                 "valid_balanced": peer["valid"]["windows_balanced_log_loss"]},
        "baseline": {"valid_balanced": baseline["valid_balanced_log_loss"]},
        # the training rows' class shares for every test row
        "constant": {k: peer["prior"]["test"][k] for k in ("log_loss", "balanced_log_loss")},
    }


def ratios(result: dict, judged: str) -> dict:
    """The ratios the bench judges by, for one physiology and validation."""
    lstm_loss = result["lstm"][judged]["log_loss"]["mean"]
    return {"lstm_over_peer": round(lstm_loss / result["peer"]["log_loss"], 3),
            "lstm_over_peer_balanced": round(
                result["lstm"][judged]["balanced_log_loss"]["mean"]
                / result["peer"]["balanced_log_loss"], 3),
            "peer_over_constant": round(result["peer"]["log_loss"] / result["constant"]["log_loss"], 3)}


def verdict(results: dict) -> dict:
    """The worst LSTM/peer ratio over physiologies and validations (where, and whether the
    LSTM wins there), and whether every peer beats its constant prior by the limit."""
    cells = [(name, scheme, r["ratios"]) for name, p in results["physiologies"].items()
             for scheme, r in p["schemes"].items()]
    worst = max(cells, key=lambda c: c[2]["lstm_over_peer"])
    worst_balanced = max(cells, key=lambda c: c[2]["lstm_over_peer_balanced"])
    weakest_peer = max(cells, key=lambda c: c[2]["peer_over_constant"])
    return {
        "worst_lstm_over_peer": {"ratio": worst[2]["lstm_over_peer"], "physiology": worst[0],
                                 "validation": worst[1]},
        "worst_lstm_over_peer_balanced": {"ratio": worst_balanced[2]["lstm_over_peer_balanced"],
                                          "physiology": worst_balanced[0],
                                          "validation": worst_balanced[1]},
        "lstm_wins_everywhere": worst[2]["lstm_over_peer"] < 1.0,
        "worst_peer_over_constant": {"ratio": weakest_peer[2]["peer_over_constant"],
                                     "physiology": weakest_peer[0], "validation": weakest_peer[1]},
        "every_peer_is_a_yardstick": weakest_peer[2]["peer_over_constant"] <= PEER_OVER_CONSTANT_LIMIT,
    }


def table(results: dict, judged: str) -> str:
    """Markdown: one row per physiology (each cell: time blocks / held-out crews), then
    the worst ratios."""
    schemes = results["schemes"]

    def pair(values: list[str]) -> str:
        return " / ".join(values)

    def lstm_cell(r: dict, prior: str, key: str) -> str:
        s = r["lstm"][prior][key]
        return f"{s['mean']:.3f} ± {s['sd']:.3f}"

    lines = ["| physiology | LSTM, predict's defaults: test log loss | LSTM `--prior none`: test "
             "balanced | peer: test log loss (trees) | constant prior: test log loss | valid "
             "balanced: LSTM, band-power baseline | LSTM / peer | peer / constant |",
             "|---|---|---|---|---|---|---|---|"]
    for name, p in results["physiologies"].items():
        rs = [p["schemes"][s] for s in schemes]
        none = "none" if "none" in results["priors"] else judged
        lines.append("| " + " | ".join([
            name,
            pair([lstm_cell(r, judged, "log_loss") for r in rs]),
            pair([lstm_cell(r, none, "balanced_log_loss") for r in rs]),
            pair([f"{r['peer']['log_loss']:.3f} ({r['peer']['trees']})" for r in rs]),
            pair([f"{r['constant']['log_loss']:.3f}" for r in rs]),
            pair([f"{r['lstm'][judged]['valid_balanced']['mean']:.3f}, "
                  f"{r['baseline']['valid_balanced']:.3f}" for r in rs]),
            pair([f"{r['ratios']['lstm_over_peer']:.2f}x" for r in rs]),
            pair([f"{r['ratios']['peer_over_constant']:.2f}x" for r in rs]),
        ]) + " |")
    v = results["verdict"]
    worst, peer = v["worst_lstm_over_peer"], v["worst_peer_over_constant"]
    lines.append(f"| **worst** | | | | | | **{worst['ratio']:.2f}x** ({worst['physiology']}, "
                 f"{worst['validation']}) | {peer['ratio']:.2f}x ({peer['physiology']}, "
                 f"{peer['validation']}) |")
    return "\n".join(lines)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="working directory (reused when rerun)")
    parser.add_argument("--physiologies", default=",".join(physiology.SIGNAL),
                        help="stand-in physiologies; default all that hold a signal: "
                             f"{','.join(physiology.SIGNAL)} ({physiology.NULL!r} is the null control)")
    parser.add_argument("--scale", type=float, default=0.1, help="train data scale; default 0.1")
    parser.add_argument("--test-scale", type=float, default=None,
                        help="test data scale; default: --scale")
    parser.add_argument("--events", default="real", choices=("real", "scaled"),
                        help="the generator's --events; default real (events at their real length)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds; default 0,1,2")
    parser.add_argument("--data-seed", type=int, default=0, help="generator and split seed")
    parser.add_argument("--window", type=int, default=None,
                        help="the Beam job's --window (default: its own default)")
    parser.add_argument("--valid-windows-per-class", type=int, default=VALID_WINDOWS_PER_CLASS,
                        help="the Beam job's cap on balanced validation windows per class "
                             f"(default {VALID_WINDOWS_PER_CLASS}; 0: no cap, the Beam default)")
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help=f"validation schemes; default {','.join(SCHEMES)}")
    parser.add_argument("--priors", default=PRIOR_CHOICES,
                        help=f"predict choices scored: {DEFAULT_CHOICE!r} (predict's defaults), a "
                             f"--prior at predict's default --balance ({DEFAULT_BALANCE:g}), or "
                             f"PRIOR@BALANCE; the first is judged; default {PRIOR_CHOICES}")
    parser.add_argument("--repredict", action="store_true",
                        help="score the runs trained before again with today's predict "
                             "(after a change to predict; training is not repeated)")
    parser.add_argument("--trainer-args", default="",
                        help="extra `trainer train` options, e.g. \"--front-end raw\"")
    parser.add_argument("--quick", action="store_true",
                        help="for development: " + ", ".join(f"--{k.replace('_', '-')} {v}"
                                                            for k, v in QUICK.items())
                             + " (unless given)")
    args = parser.parse_args(argv)
    given = set(argv if argv is not None else sys.argv[1:])
    if args.quick:
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    args.test_scale = args.test_scale or args.scale
    args.seeds = [int(s) for s in str(args.seeds).split(",")]
    args.priors = args.priors.split(",")
    args.trainer_args = shlex.split(args.trainer_args)
    args.physiologies = args.physiologies.split(",")
    args.schemes = args.schemes.split(",")
    for name in args.physiologies:
        if name not in physiology.PHYSIOLOGIES:
            parser.error(f"--physiologies: unknown {name!r}; choose from "
                         f"{','.join(physiology.PHYSIOLOGIES)}")
    for scheme in args.schemes:
        if scheme not in SCHEMES:
            parser.error(f"--schemes: unknown {scheme!r}; choose from {','.join(SCHEMES)}")
    return args


def main(argv: Optional[list[str]] = None) -> dict:
    args = parse_args(argv)
    judged = args.priors[0]
    results = {"scale": args.scale, "test_scale": args.test_scale, "events": args.events,
               "seeds": args.seeds, "data_seed": args.data_seed, "priors": args.priors,
               "judged": judged, "trainer_args": args.trainer_args, "schemes": args.schemes,
               "valid_windows_per_class": args.valid_windows_per_class, "physiologies": {}}
    cells = [(name, scheme) for name in args.physiologies for scheme in args.schemes]
    raws = {}
    for name, scheme in cells:
        root = os.path.join(args.work, name)
        raws[name] = generate(root, name, args.scale, args.test_scale, args.events, args.data_seed)
        preprocess(root, raws[name], scheme, args.window, args.valid_windows_per_class,
                   args.data_seed)
    # Seed by seed over every cell, so that a bench stopped early has covered them all.
    runs: dict = {cell: [] for cell in cells}
    for seed in args.seeds:
        for name, scheme in cells:
            root = os.path.join(args.work, name)
            runs[name, scheme].append(lstm(
                root, os.path.join(root, "data", scheme), os.path.join(raws[name], "test_labels.csv"),
                scheme, seed, args.trainer_args, args.priors, args.repredict))
    for name in args.physiologies:
        root = os.path.join(args.work, name)
        schemes = {}
        for scheme in args.schemes:
            schemes[scheme] = scheme_results(root, raws[name], scheme, runs[name, scheme], args)
            schemes[scheme]["ratios"] = ratios(schemes[scheme], judged)
        results["physiologies"][name] = {"schemes": schemes}
        print(f"{name}: " + json.dumps({s: r["ratios"] for s, r in schemes.items()}), flush=True)
    results["verdict"] = verdict(results)
    results["provenance"] = provenance.stamp(__file__, argv)
    markdown = table(results, judged)
    with open(os.path.join(args.work, "quality.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.work, "quality.md"), "w") as f:
        f.write(markdown + "\n")
    print(markdown)
    print(json.dumps(results["verdict"], indent=2))
    return results


if __name__ == "__main__":
    main()
