"""Command line: `python -m trainer {train,predict,score} ...` (also `pilotstate-train`).

    train    --data DIR --job-dir DIR [--config FILE] [--<hyperparameter> VALUE ...]
    predict  --run DIR --data DIR --out submission.csv [--stride N] [--prior P]
             [--balance SHARE] [--lookahead SECONDS] [--smooth SECONDS] [--labels FILE]
             [--plot FILE] [--overwrite]
    score    --submission FILE --labels FILE

DIRs and files may be local or gs://.  On Vertex AI, --job-dir defaults to the
base output directory, and AIP_CHECKPOINT_DIR, AIP_TENSORBOARD_LOG_DIR and
AIP_MODEL_DIR are honoured (see trainer/runs/run_dir.py).  A user error (a missing
file, a bad option, damaged data) prints one line and exits with status 2;
--verbose shows its traceback, and every library's log.  A training run whose loss
becomes NaN or infinite stops in one line with status 1, keeping its last good
checkpoint and exporting nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Optional, Sequence

from trainer.shared import console
from trainer.config import add_config_arguments, config_from_args
from trainer.shared.errors import UserError, exit_on_user_error
from trainer.shared.output_claim import ClaimLostError, OutputClaim, OutputClaimedError
from trainer.shared.gcs_access import check_gcs_access
from trainer.shared.vertex import default_job_dir
from trainer.prediction.prior import BALANCE_HELP, DEFAULT_BALANCE, DEFAULT_PRIOR, PRIOR_HELP
from trainer.prediction.window_rows import DEFAULT_SMOOTH_SECONDS, DEFAULT_STRIDE

PROG = "python -m trainer"


def _number(kind: type, low: float, high: Optional[float] = None) -> Callable[[str], float]:
    """An argparse type: a number of `kind` >= low (and <= high, if given)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__} number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is below {low:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is above {high:g}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    common = dict(allow_abbrev=False, parents=[console.verbose_option()])

    train = commands.add_parser("train", help="train (or resume) a run", **common)
    train.add_argument("--data", required=True, metavar="DIR",
                       help="the --output directory of beam_preprocess (required)")
    train.add_argument("--job-dir", metavar="DIR",
                       help="runs are kept in JOB_DIR/runs/<run id>; a run of the same config "
                            "interrupted there is resumed. Default: the base output directory "
                            "on Vertex AI (AIP_MODEL_DIR's parent), else required")
    add_config_arguments(train)

    predict = commands.add_parser("predict", help="write a submission for the test split",
                                  **common)
    predict.add_argument("--run", required=True, metavar="DIR",
                         help="a run directory, or a job directory (its latest finished run) "
                              "(required)")
    predict.add_argument("--data", required=True, metavar="DIR",
                         help="the --output directory of beam_preprocess holding the test "
                              "split (required)")
    predict.add_argument("--out", required=True, metavar="FILE",
                         help="CSV to write: id,A,B,C,D, every test id of --data (quarantined "
                              "ones too, where their id reads). Its folder must exist; an "
                              "existing file needs --overwrite (required)")
    predict.add_argument("--stride", type=_number(int, 1), default=DEFAULT_STRIDE,
                         help="rows between predicted windows. Default: "
                              f"{DEFAULT_STRIDE}")
    predict.add_argument("--prior", default=DEFAULT_PRIOR,
                         help=f"the test split's class prior: {PRIOR_HELP}. "
                              f"Default: {DEFAULT_PRIOR}")
    predict.add_argument("--balance", type=_number(float, 0, 1), default=DEFAULT_BALANCE,
                         metavar="SHARE", help=f"{BALANCE_HELP}. Default: {DEFAULT_BALANCE:g}")
    predict.add_argument("--lookahead", type=_number(float, 0), default=0.0, metavar="SECONDS",
                         help="seconds of signal after a row that its prediction may use: 0 is "
                              "causal (what a live monitor knows at that row); e.g. 0.5 for "
                              "scoring whole recordings offline, since a state shows in the "
                              "signals only after it begins. Default: 0")
    predict.add_argument("--smooth", type=_number(float, 0), default=DEFAULT_SMOOTH_SECONDS,
                         metavar="SECONDS", help="average each window's probabilities with "
                         "those of the windows that ended in the SECONDS before it (causal; "
                         "a state lasts seconds to minutes, so evidence gathers over a span "
                         f"longer than a window); 0: off. Default: {DEFAULT_SMOOTH_SECONDS:g}")
    predict.add_argument("--labels", help="CSV id,event of (some) test ids, e.g. the stand-in's "
                         "test_labels.csv: the session plot shows them as a band under the "
                         "predictions and picks the session with the most label changes; "
                         "default: none (predictions only, first session)")
    predict.add_argument("--plot", help="PNG of one whole test session's predictions; "
                         "default: beside --out, named <out name>_session.png")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace an existing --out (and --plot) that an earlier predict "
                              "wrote; a file that is not a submission (or PNG), or is an input "
                              "of the command, is never replaced. Default: refuse an existing "
                              "file")

    score = commands.add_parser("score", help="multi-class log loss of a submission", **common)
    score.add_argument("--submission", required=True, metavar="FILE",
                       help="CSV id,A,B,C,D, as `predict` writes (required)")
    score.add_argument("--labels", required=True, metavar="FILE",
                       help="CSV with columns id,event (required)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    console.start(args.verbose)
    return exit_on_user_error(f"{PROG} {args.command}", args.verbose, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    # TensorFlow is imported here, not at the top, so that `--help` and argument errors
    # do not wait for it.
    if args.command == "train":
        job_dir = args.job_dir or default_job_dir()
        if not job_dir:
            raise UserError("--job-dir is required (or AIP_MODEL_DIR on Vertex AI)")
        check_gcs_access({"--data": args.data, "--job-dir": job_dir, "--config": args.config})
        try:
            # Claimed before TensorFlow is imported, so that a second job is refused at once.
            with OutputClaim(job_dir, "python -m trainer train") as claim:
                console.import_tensorflow(args.verbose)
                from trainer.data.datasets import shards_read_whole
                from trainer.training.loop import train

                with shards_read_whole(args.data):
                    paths = train(config_from_args(args), args.data, job_dir, claim)
        except (OutputClaimedError, ClaimLostError) as err:
            print(f"{PROG} train: {err}", file=sys.stderr)
            return 1
        print(json.dumps({"run_id": paths.run_id, "run_dir": paths.run_dir}))
    elif args.command == "predict":
        check_gcs_access({"--run": args.run, "--data": args.data, "--out": args.out,
                          "--labels": args.labels, "--plot": args.plot})
        console.import_tensorflow(args.verbose)
        from trainer.data.datasets import shards_read_whole
        from trainer.prediction.predict import predict

        with shards_read_whole(args.data):
            summary = predict(args.run, args.data, args.out,
                              stride=args.stride, prior=args.prior, balance=args.balance,
                              lookahead=args.lookahead, smooth=args.smooth,
                              labels=args.labels, plot=args.plot,
                              overwrite=args.overwrite)
        print(json.dumps(summary))
    else:
        check_gcs_access({"--submission": args.submission, "--labels": args.labels})
        console.import_tensorflow(args.verbose)  # score reads gs:// through tf.io.gfile
        from trainer.prediction.score import score

        metrics = score(args.submission, args.labels)
        rescaled = metrics["rescaled_rows"]
        if rescaled:
            rows = "1 row does" if rescaled == 1 else f"{rescaled} rows do"
            print(f"{PROG} score: {args.submission}: {rows} not sum to 1: rescaled as Kaggle "
                  "does (clipped to [1e-15, 1 - 1e-15], then divided by the row's sum)",
                  file=sys.stderr)
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
