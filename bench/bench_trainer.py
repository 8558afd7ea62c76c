"""Benchmark the trainer: input pipeline windows/s, training windows/s, predict rows/s.

    python bench/bench_trainer.py                        # writes its own fixture data
    python bench/bench_trainer.py --data DIR             # a beam_preprocess output
    python bench/bench_trainer.py --rows-per-session 4000 --batches 5   # quick check

It also times the training step alone for every front end (spectral, filterbank,
raw) at 256- and 1,024-row windows (`--front-end-windows`).

Targets (issue 4): the input pipeline alone delivers >= 10x the windows/s that a
training step consumes (measured on one in-memory batch, so the model is timed
alone); predict runs at >= 15k rows/s (the ~18M test rows in <= 20 minutes) with
the default model and stride.  Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from trainer import data  # noqa: E402
from trainer.config import FRONT_ENDS, TrainConfig  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.predict import DEFAULT_STRIDE, predict  # noqa: E402
from trainer.train import make_train_step, train  # noqa: E402
from trainer_fixtures import FixtureSpec, write_fixture_data  # noqa: E402

PIPELINE_RATIO_TARGET = 10.0
PREDICT_ROWS_PER_S_TARGET = 15_000


def _rate(count_per_call: int, calls: int, fn) -> float:
    fn()  # warm-up (tracing, first reads)
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return count_per_call * calls / (time.perf_counter() - started)


def pipeline_windows_per_s(data_dir: str, manifest: dict, config: TrainConfig,
                           batches: int) -> float:
    iterator = iter(data.train_dataset(data_dir, manifest, config, config.global_batch_size))
    return _rate(config.global_batch_size, batches, lambda: next(iterator))


def training_windows_per_s(config: TrainConfig, steps: int) -> float:
    """Train steps on one in-memory batch: what the model consumes, input excluded."""
    import keras

    strategy = tf.distribute.get_strategy()
    model = build_model(config)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    rng = np.random.default_rng(0)
    batch = (rng.standard_normal((config.global_batch_size, config.window, 23)).astype(np.float32),
             rng.integers(0, 4, config.global_batch_size).astype(np.int32),
             np.ones(config.global_batch_size, np.float32))
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    step = make_train_step(model, optimizer, strategy, config.global_batch_size)
    return _rate(config.global_batch_size, steps, lambda: float(step(iterator)))


def predict_rows_per_s(data_dir: str, config: TrainConfig, stride: int, work: str) -> dict:
    """Full `predict` (reading, model, CSV) with a barely trained default model."""
    quick = TrainConfig.from_dict({**config.to_dict(), "epochs": 1, "steps_per_epoch": 2})
    paths = train(quick, data_dir, os.path.join(work, "job"))
    started = time.perf_counter()
    summary = predict(paths.run_dir, data_dir, os.path.join(work, "submission.csv"), stride=stride)
    seconds = time.perf_counter() - started
    return {"rows": summary["rows"], "seconds": round(seconds, 2),
            "rows_per_s": round(summary["rows"] / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="data directory (default: write fixture data)")
    parser.add_argument("--config", help="TrainConfig JSON (default: the defaults)")
    parser.add_argument("--rows-per-session", type=int, default=40_000,
                        help="fixture size (6 train, 2 valid, 2 test sessions)")
    parser.add_argument("--batches", type=int, default=30, help="batches/steps timed")
    parser.add_argument("--stride", type=int, default=DEFAULT_STRIDE)
    parser.add_argument("--front-end-windows", type=lambda t: [int(v) for v in t.split(",")],
                        default=[256, 1024],
                        help="window lengths at which each front end's training is timed; "
                             "default 256,1024")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        data_dir = args.data
        if not data_dir:
            data_dir = os.path.join(work, "data")
            write_fixture_data(data_dir, FixtureSpec(
                window=256, rows_per_session=args.rows_per_session, segment_rows=16_000,
                valid_windows_per_class=200))
        manifest = data.read_manifest(data_dir)
        config = TrainConfig.load(args.config) if args.config else TrainConfig()
        config = data.resolve_window(config, manifest)
        pipeline = pipeline_windows_per_s(data_dir, manifest, config, args.batches)
        training = training_windows_per_s(config, args.batches)
        result = {
            "data": args.data or f"fixture, {args.rows_per_session} rows/session",
            "config": config.to_dict(),
            "cpu_count": os.cpu_count(),
            "pipeline_windows_per_s": round(pipeline),
            "training_windows_per_s": round(training),
            "pipeline_over_training": round(pipeline / training, 1),
            "pipeline_target_met": pipeline / training >= PIPELINE_RATIO_TARGET,
            # Training steps alone for every front end at each window length (the
            # rest of the config as above).
            "training_windows_per_s_by_front_end": {
                f"{front_end}@{window}": round(training_windows_per_s(
                    TrainConfig.from_dict({**config.to_dict(), "front_end": front_end,
                                           "window": window}), args.batches))
                for front_end in FRONT_ENDS for window in args.front_end_windows},
        }
        if "test" in manifest["splits"]:
            result["predict"] = predict_rows_per_s(data_dir, config, args.stride, work)
            result["predict_stride"] = args.stride
            result["predict_target_met"] = (result["predict"]["rows_per_s"]
                                            >= PREDICT_ROWS_PER_S_TARGET)
        else:
            result["predict"] = "skipped: the data directory has no test split"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
