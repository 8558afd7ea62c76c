"""Command line: `python -m trainer {train,predict,score} ...` (also `pilotstate-train`).

    train    --data DIR --job-dir DIR [--config FILE] [--<hyperparameter> VALUE ...]
    predict  --run DIR --data DIR --out submission.csv [--stride N] [--prior P]
    score    --submission FILE --labels FILE

DIRs and files may be local or gs://.  On Vertex AI, --job-dir defaults to the
base output directory, and AIP_CHECKPOINT_DIR, AIP_TENSORBOARD_LOG_DIR and
AIP_MODEL_DIR are honoured (see trainer/run_dir.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

from trainer.config import add_config_arguments, config_from_args
from trainer.output_claim import ClaimLostError, OutputClaim, OutputClaimedError
from trainer.prior import DEFAULT_PRIOR, PRIOR_HELP


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train (or resume) a run")
    train.add_argument("--data", required=True, help="beam_preprocess output directory")
    train.add_argument("--job-dir", help="runs are kept in JOB_DIR/runs/<run id>")
    add_config_arguments(train)

    predict = commands.add_parser("predict", help="write a submission for the test split")
    predict.add_argument("--run", required=True, help="a run directory, or a job directory "
                         "(its latest finished run)")
    predict.add_argument("--data", required=True)
    predict.add_argument("--out", required=True, help="CSV to write: id,A,B,C,D")
    predict.add_argument("--stride", type=int, default=None,
                         help="rows between predicted windows (default 64)")
    predict.add_argument("--prior", default=DEFAULT_PRIOR,
                         help=f"{PRIOR_HELP}; default: {DEFAULT_PRIOR}")

    score = commands.add_parser("score", help="multi-class log loss of a submission")
    score.add_argument("--submission", required=True)
    score.add_argument("--labels", required=True, help="CSV with columns id,event")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    # Imported here so that `--help` and argument errors do not wait for TensorFlow.
    if args.command == "train":
        from trainer import run_dir
        from trainer.train import train

        job_dir = args.job_dir or run_dir.default_job_dir()
        if not job_dir:
            print("train: --job-dir is required (or AIP_MODEL_DIR on Vertex AI)", file=sys.stderr)
            return 2
        try:
            with OutputClaim(job_dir, "python -m trainer train"):
                paths = train(config_from_args(args), args.data, job_dir)
        except (OutputClaimedError, ClaimLostError) as err:
            print(f"train: {err}", file=sys.stderr)
            return 1
        print(json.dumps({"run_id": paths.run_id, "run_dir": paths.run_dir}))
    elif args.command == "predict":
        from trainer.predict import DEFAULT_STRIDE, predict

        summary = predict(args.run, args.data, args.out, stride=args.stride or DEFAULT_STRIDE,
                          prior=args.prior)
        print(json.dumps(summary))
    else:
        from trainer.score import score

        metrics = score(args.submission, args.labels)
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
