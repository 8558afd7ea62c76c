"""Which tf.distribute strategy a run uses, and how the global batch splits."""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from trainer.config import ConfigError


def make_strategy(devices: Sequence[str] = ()) -> tf.distribute.Strategy:
    """MirroredStrategy over `devices`, else over every visible GPU, else the default.

    With no GPU the default strategy runs on the CPU with no overhead; naming
    devices (e.g. two logical CPUs) forces mirroring, which the tests use.
    """
    if devices:
        return tf.distribute.MirroredStrategy(list(devices))
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The global batch is per-replica batch x replicas; it must divide evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(f"global_batch_size {global_batch_size} is not a multiple of the "
                          f"{replicas} replicas: change --global-batch-size or --devices")
    return global_batch_size // replicas


def replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices the replicas run on (the default strategy has one, unnamed)."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return list(strategy.extended.worker_devices)
    return ["default"]


def describe_devices(strategy: tf.distribute.Strategy) -> str:
    """Where the replicas run, in words: "the CPU (no GPU found)", "2 GPUs: GPU:0, GPU:1"."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        devices = [d.split("/")[-1].replace("device:", "") for d in replica_devices(strategy)]
        kinds = {d.split(":")[0] for d in devices}
        kind = kinds.pop() if len(kinds) == 1 else "device"
        plural = "s" if len(devices) > 1 else ""
        return f"{len(devices)} {kind}{plural}: {', '.join(devices)}"
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:  # the default strategy places ops on the first GPU
        return f"1 GPU: {gpus[0].name.replace('/device:', '')}"
    return "the CPU (no GPU found)"
