"""Raw front end: the scaled samples themselves, average-pooled (the first model, kept
for comparison).

    signals [b, window, 23] -> average pool (pool rows) -> [b, window / pool, 23]
"""
from __future__ import annotations

import keras

from trainer.config import TrainConfig


def build(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    if config.pool <= 1:
        return signals
    return keras.layers.AveragePooling1D(config.pool, name="pool")(signals)
