"""Benchmark the trainer's feeding: input alone, step alone, both together; predict rows/s.

    python bench/bench_trainer.py                        # writes its own fixture data
    python bench/bench_trainer.py --data DIR             # a beam_preprocess output (its window)
    python bench/bench_trainer.py --steps 5 --json out.json   # quick check, JSON to a file

For each window length (`--windows`, default 256 and 1,024 rows; fixture data of that
window is written unless --data is given), each number of devices (`--devices`,
default 1 and 2: the CPU split into logical devices, which is what MirroredStrategy
runs on here; on a GPU machine, the GPUs) and each input path:

* input alone: the streaming tf.data pipeline's batches, or the on-device path's
  batches cut by a traced function (trainer/data/device_windows.py) with no model;
* step alone: training steps on one constant batch held on the devices (the model's
  own speed, no input at all);
* together: real training steps fed by that path (trainer.training.loop.make_train_steps),
  `--steps-per-execution` steps per traced call;

all in windows/s.  Then the steps/s of a tiny model (host overhead: one step per call
and one Python round trip, as before issue 13, against many steps per call), the
training steps alone of every front end, and `predict`'s rows/s.

Targets (issue 13, on this CPU): together >= 0.9x step alone on the on-device path at
both window lengths; the tiny model's steps/s >= 5x the one-step-per-call figure.
Prints (and with --json writes) one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import provenance  # noqa: E402
from trainer.prediction.window_rows import DEFAULT_STRIDE  # noqa: E402

TOGETHER_OVER_STEP_TARGET = 0.9
TINY_SPEEDUP_TARGET = 5.0
PREDICT_ROWS_PER_S_TARGET = 15_000
# A model whose step costs next to nothing, so that what is left is the host's part.
TINY_MODEL = {"front_end": "raw", "pool": 64, "lstm_units": [4], "window": 64,
              "global_batch_size": 8, "dropout": 0.0, "augment_shift": 0, "augment_gain": 0.0,
              "augment_channel_dropout": 0.0, "augment_noise": 0.0}


def _rate(count_per_call: int, calls: int, fn: Callable[[], object], rounds: int = 5) -> float:
    """count_per_call per second: the best of `rounds` rounds of calls/rounds calls each,
    after one warm-up call (tracing, first reads).  The best, because on a shared or
    frequency-scaling CPU a round is only ever slowed down by what else runs."""
    fn()
    per_round = max(1, calls // rounds)
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = max(best, count_per_call * per_round / (time.perf_counter() - started))
    return best


def _strategy(devices: int):
    import tensorflow as tf

    from trainer.shared.distribution import make_strategy

    if devices == 1:
        return make_strategy(())
    kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    return make_strategy(tuple(f"/{kind.lower()}:{i}" for i in range(devices)))


def _training(config, strategy):
    import keras

    from trainer.model.network import build_model
    from trainer.training.loop import make_optimizer, make_step_counter

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(config)
    optimizer = make_optimizer(model, config, strategy)
    return model, optimizer, make_step_counter(strategy)


class ConstantBatches:
    """One random batch per replica, made once and kept on the replicas' devices: fed to
    make_train_steps in place of DeviceWindows, the step is timed with no input at all."""

    def __init__(self, config, strategy):
        import tensorflow as tf

        from trainer.records import spec

        size = config.global_batch_size // strategy.num_replicas_in_sync
        with strategy.scope():
            self.windows = tf.Variable(tf.random.stateless_normal(
                [size, config.window, spec.NUM_CHANNELS], seed=[0, 0]), trainable=False)
            self.labels = tf.Variable(tf.random.stateless_uniform(
                [size], seed=[0, 1], maxval=spec.NUM_CLASSES, dtype=tf.int32), trainable=False)
            self.weights = tf.Variable(tf.ones([size]), trainable=False)

    def replica_batch(self, step):
        return self.windows, self.labels, self.weights


def feeding(data_dir: str, config, devices: int, steps: int) -> dict:
    """Input alone, step alone and together, in windows/s, for both input paths."""
    import tensorflow as tf

    from trainer.data import datasets as data
    from trainer.data.device_windows import DeviceWindows, load_split
    from trainer.training.loop import make_train_steps

    strategy = _strategy(devices)
    manifest = data.read_manifest(data_dir)
    batch, k = config.global_batch_size, config.steps_per_execution
    calls = max(1, steps // k)
    per_call = batch * k
    result: dict = {"devices": devices, "window": config.window, "global_batch_size": batch,
                    "steps_per_execution": k}

    # Input alone.
    stream = iter(strategy.experimental_distribute_dataset(
        data.train_dataset(data_dir, manifest, config, batch)))
    result["streaming_input"] = _rate(batch, calls * k, lambda: next(stream))
    windows = DeviceWindows(load_split(data_dir, manifest, config), manifest, config, strategy)

    @tf.function
    def cut_only(first_step):
        total = tf.constant(0.0)
        for i in tf.range(k):
            per_replica = strategy.run(lambda s: tf.reduce_sum(windows.replica_batch(s)[0]),
                                       args=(first_step + tf.cast(i, tf.int64),))
            total += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return total

    clock = iter(range(1, 10**9))
    result["on_device_input"] = _rate(
        per_call, calls, lambda: cut_only(tf.constant(next(clock) * k, tf.int64)).numpy())

    # Step alone: one constant batch held on the devices (the model's own speed).
    model, optimizer, counter = _training(config, strategy)
    step_alone = make_train_steps(model, optimizer, strategy, config, counter,
                                  ConstantBatches(config, strategy))
    result["step_alone"] = _rate(per_call, calls, lambda: step_alone(None, tf.constant(k)).numpy())

    # Together: real training steps fed by each path.
    model, optimizer, counter = _training(config, strategy)
    streamed = make_train_steps(model, optimizer, strategy, config, counter)
    result["streaming_together"] = _rate(per_call, calls,
                                         lambda: streamed(stream, tf.constant(k)).numpy())
    model, optimizer, counter = _training(config, strategy)
    on_device = make_train_steps(model, optimizer, strategy, config, counter, windows)
    result["on_device_together"] = _rate(per_call, calls,
                                         lambda: on_device(None, tf.constant(k)).numpy())
    result = {key: round(v) if isinstance(v, float) else v for key, v in result.items()}
    result["on_device_together_over_step"] = round(
        result["on_device_together"] / result["step_alone"], 2)
    result["streaming_together_over_step"] = round(
        result["streaming_together"] / result["step_alone"], 2)
    return result


def tiny_model_steps_per_s(data_dir: str, base_config, steps: int) -> dict:
    """Steps/s of a tiny model: host overhead.  `one_step_per_call` is the loop before
    issue 13 (streaming input, one step per traced call, the loss read after each);
    `constant_batch_50_per_call` is the step with neither input nor host, the ceiling
    that removing host overhead can reach (`ceiling_speedup`)."""
    import tensorflow as tf

    from trainer.config import TrainConfig
    from trainer.data import datasets as data
    from trainer.data.device_windows import DeviceWindows, load_split
    from trainer.training.loop import make_train_steps

    strategy = _strategy(1)
    manifest = data.read_manifest(data_dir)
    config = TrainConfig.from_dict({**base_config.to_dict(), **TINY_MODEL})
    windows = DeviceWindows(load_split(data_dir, manifest, config), manifest, config, strategy)
    stream = iter(strategy.experimental_distribute_dataset(
        data.train_dataset(data_dir, manifest, config, config.global_batch_size)))
    out = {}
    for name, source, k in (("one_step_per_call", None, 1), ("on_device_1_per_call", windows, 1),
                            ("on_device_50_per_call", windows, 50),
                            ("constant_batch_50_per_call", ConstantBatches(config, strategy), 50)):
        model, optimizer, counter = _training(config, strategy)
        run = make_train_steps(model, optimizer, strategy, config, counter,
                               source)
        iterator = stream if source is None else None
        out[name] = round(_rate(k, max(1, steps * 5 // k),
                                lambda: run(iterator, tf.constant(k)).numpy()), 1)
    out["speedup"] = round(out["on_device_50_per_call"] / out["one_step_per_call"], 1)
    out["ceiling_speedup"] = round(out["constant_batch_50_per_call"] / out["one_step_per_call"], 1)
    return out


def front_end_steps(config, windows: list[int], steps: int) -> dict:
    """Training steps alone (a constant batch on the device) of every front end at each
    window length."""
    import tensorflow as tf

    from trainer.config import FRONT_ENDS, TrainConfig
    from trainer.training.loop import make_train_steps

    strategy = _strategy(1)
    out = {}
    for front_end in FRONT_ENDS:
        for window in windows:
            cfg = TrainConfig.from_dict({**config.to_dict(), "front_end": front_end,
                                         "window": window})
            model, optimizer, counter = _training(cfg, strategy)
            run = make_train_steps(model, optimizer, strategy, cfg, counter,
                                   ConstantBatches(cfg, strategy))
            k = cfg.steps_per_execution
            out[f"{front_end}@{window}"] = round(_rate(
                cfg.global_batch_size * k, max(1, steps // k),
                lambda: run(None, tf.constant(k)).numpy()))
    return out


def predict_rows_per_s(data_dir: str, config, stride: int, work: str) -> dict:
    """Full `predict` (reading, model, CSV) with a barely trained default model."""
    from trainer.config import TrainConfig
    from trainer.prediction.predict import predict
    from trainer.training.loop import train

    quick = TrainConfig.from_dict({**config.to_dict(), "epochs": 1, "steps_per_epoch": 2})
    paths = train(quick, data_dir, os.path.join(work, "job"))
    started = time.perf_counter()
    summary = predict(paths.run_dir, data_dir, os.path.join(work, "submission.csv"),
                      stride=stride, overwrite=True)
    seconds = time.perf_counter() - started
    return {"rows": summary["rows"], "seconds": round(seconds, 2),
            "rows_per_s": round(summary["rows"] / seconds)}


def _fixture(work: str, window: int, rows_per_session: int) -> str:
    from trainer_fixtures import FixtureSpec, write_fixture_data

    out = os.path.join(work, f"data-{window}")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        write_fixture_data(out, FixtureSpec(window=window, rows_per_session=rows_per_session,
                                            segment_rows=16_000, valid_windows_per_class=200))
    return out


def _config(data_dir: str, args: argparse.Namespace):
    from trainer.config import TrainConfig
    from trainer.data import datasets as data

    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.steps_per_execution:
        config = TrainConfig.from_dict({**config.to_dict(),
                                        "steps_per_execution": args.steps_per_execution})
    return data.resolve_window(config, data.read_manifest(data_dir))


def _child(args: argparse.Namespace) -> None:
    """One device count in a fresh interpreter: logical devices must be set up before
    TensorFlow starts its runtime."""
    import tensorflow as tf

    if args.devices_here > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices_here)
    data_dir = args.data_here
    print(json.dumps(feeding(data_dir, _config(data_dir, args), args.devices_here, args.steps)))


def _feeding_in_child(data_dir: str, devices: int, args: argparse.Namespace) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--data-here", data_dir,
            "--devices-here", str(devices), "--steps", str(args.steps)]
    if args.config:
        argv += ["--config", args.config]
    if args.steps_per_execution:
        argv += ["--steps-per-execution", str(args.steps_per_execution)]
    done = subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode:
        raise SystemExit(f"bench_trainer: the {devices}-device run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _targets(rows: list[dict], tiny: dict) -> dict:
    on_device = [r["on_device_together_over_step"] for r in rows]
    return {"on_device_together_over_step_min": min(on_device),
            "together_target_met": min(on_device) >= TOGETHER_OVER_STEP_TARGET,
            "tiny_model_speedup": tiny["speedup"],
            "tiny_target_met": tiny["speedup"] >= TINY_SPEEDUP_TARGET}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a beam_preprocess output to use for every window length "
                        "(default: fixture data of each --windows length)")
    parser.add_argument("--config", help="TrainConfig JSON (default: the defaults)")
    parser.add_argument("--windows", type=lambda t: [int(v) for v in t.split(",")],
                        default=[256, 1024], help="window lengths; default 256,1024")
    parser.add_argument("--devices", type=lambda t: [int(v) for v in t.split(",")],
                        help="device counts; default 1 and every GPU (1,2: the CPU split in "
                             "two logical devices, when there is no GPU)")
    parser.add_argument("--rows-per-session", type=int, default=40_000,
                        help="fixture size (6 train, 2 valid, 2 test sessions); default 40000")
    parser.add_argument("--steps", type=int, default=60, help="steps timed per figure; default 60")
    parser.add_argument("--steps-per-execution", type=int, default=None,
                        help="steps per traced call (default: the config's)")
    parser.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                        help=f"predict's stride; default {DEFAULT_STRIDE}")
    parser.add_argument("--no-predict", action="store_true", help="skip the predict figure")
    parser.add_argument("--json", help="also write the result to this file (local or gs://)")
    parser.add_argument("--data-here", help=argparse.SUPPRESS)     # child: one device count
    parser.add_argument("--devices-here", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from trainer.shared.console import import_tensorflow_quietly

    import_tensorflow_quietly()
    if args.data_here:
        _child(args)
        return

    import tensorflow as tf

    if not args.devices:
        gpus = len(tf.config.list_physical_devices("GPU"))
        args.devices = sorted({1, gpus or 2})
    with tempfile.TemporaryDirectory() as work:
        data_dirs = {w: args.data or _fixture(work, w, args.rows_per_session)
                     for w in ([None] if args.data else args.windows)}
        rows = [_feeding_in_child(d, n, args) for d in data_dirs.values() for n in args.devices]
        first = next(iter(data_dirs.values()))
        config = _config(first, args)
        tiny = tiny_model_steps_per_s(first, config, args.steps)
        result = {
            "data": args.data or f"fixture, {args.rows_per_session} rows/session",
            "cpu_count": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_logical_devices("GPU")],
            "feeding_windows_per_s": rows,
            "tiny_model_steps_per_s": tiny,
            "targets": _targets(rows, tiny),
            "front_end_step_windows_per_s": front_end_steps(config, args.windows, args.steps),
        }
        if not args.no_predict:
            result["predict"] = predict_rows_per_s(first, config, args.stride, work)
            result["predict_target_met"] = (result["predict"]["rows_per_s"]
                                            >= PREDICT_ROWS_PER_S_TARGET)
    result["provenance"] = provenance.stamp(__file__, argv)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with tf.io.gfile.GFile(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
