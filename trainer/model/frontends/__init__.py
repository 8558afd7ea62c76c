"""Front ends: a window of scaled signals -> a sequence of feature frames for the LSTMs.

Each module builds one front end, `build(signals, config) -> frames`, from
`signals` [batch, window, 23 channels] to `frames` [batch, steps, features], its
layer recipe readable top to bottom.  A new front end is one new module here plus
its name in `trainer.config.FRONT_ENDS`: the module is found by that name.

Everything a front end computes is a Keras layer inside the model, so `predict`,
the SavedModel and the trainer image need nothing else.
"""
from __future__ import annotations

import importlib

import keras

from trainer.config import TrainConfig
# Registers the custom layers, so that a saved `.keras` model loads without building one.
from trainer.model.frontends import layers  # noqa: F401


def build_front_end(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    """The front end `config.front_end` (the module of that name here) applied to `signals`."""
    return importlib.import_module(f"{__name__}.{config.front_end}").build(signals, config)
