"""Front ends: a window of scaled signals -> a sequence of feature frames for the LSTMs.

Each module builds one front end, `build(signals, config) -> frames`, from
`signals` [batch, window, 23 channels] to `frames` [batch, steps, features], its
layer recipe readable top to bottom.  A new front end is one new module here plus
its name in `trainer.config.FRONT_ENDS`.

Everything a front end computes is a Keras layer inside the model, so `predict`,
the SavedModel and the trainer image need nothing else.
"""
from __future__ import annotations

import keras

from trainer.config import TrainConfig
from trainer.frontends import context, filterbank, raw, spectral

BUILDERS = {"context": context.build, "spectral": spectral.build, "filterbank": filterbank.build,
            "raw": raw.build}


def build_front_end(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    """The front end `config.front_end` applied to `signals`."""
    return BUILDERS[config.front_end](signals, config)
