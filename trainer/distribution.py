"""Which tf.distribute strategy a run uses, and how the global batch splits."""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf


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
        raise ValueError(f"global_batch_size {global_batch_size} is not a multiple of the "
                         f"{replicas} replicas")
    return global_batch_size // replicas


def replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices the replicas run on (the default strategy has one, unnamed)."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return list(strategy.extended.worker_devices)
    return ["default"]
