"""The model: a front end, stacked LSTMs over its frames, and 4 logits.

The front end (trainer/model/frontends/, chosen by `config.front_end`) turns a window
of scaled signals into a sequence of feature frames, which also shortens the
sequence (256 rows -> 7 frames at frame 64, hop 32), most of an LSTM's cost.
Every LSTM keeps the settings under which Keras 3 runs the fused cuDNN kernel on a
GPU (keras/src/layers/rnn/lstm.py and backend/tensorflow/rnn.py: tanh, sigmoid
recurrent activation, a bias, no unrolling, no recurrent dropout, no mask);
`cudnn_blockers` lists what would break that.

`config.precision` sets the LSTMs' compute type (Keras mixed precision: float32
weights, bf16 or fp16 arithmetic, which cuDNN runs too).  The front end (FFT band
powers, logs) and the logits stay float32, as Keras' mixed-precision guide advises
for numerically sensitive layers and for the outputs.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.model.frontends import build_front_end
from trainer.records import spec

# Keras dtype policy of the LSTM layers for each `TrainConfig.precision`.
PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def build_model(config: TrainConfig) -> keras.Model:
    """Uncompiled model: windows [batch, window, channels] -> logits [batch, classes]."""
    if config.window is None:
        raise ValueError("config.window is unset: resolve it from the manifest first "
                         "(trainer.data.datasets.resolve_window)")
    inputs = keras.Input(shape=(config.window, spec.NUM_CHANNELS), name="signals")
    x = build_front_end(inputs, config)
    last = len(config.lstm_units) - 1
    for i, units in enumerate(config.lstm_units):
        x = keras.layers.LSTM(
            units, return_sequences=i < last, dropout=config.dropout,
            activation="tanh", recurrent_activation="sigmoid", use_bias=True,
            recurrent_dropout=0.0, unroll=False, use_cudnn="auto",
            dtype=PRECISION_POLICIES[config.precision], name=f"lstm_{i}")(x)
    logits = keras.layers.Dense(spec.NUM_CLASSES, dtype="float32", name="logits")(x)
    model = keras.Model(inputs, logits, name="pilotstate_lstm")
    blockers = cudnn_blockers(model)
    if blockers:
        raise AssertionError("model would not use cuDNN: " + "; ".join(blockers))
    return model


def cudnn_blockers(model: keras.Model) -> list[str]:
    """Reasons why an LSTM of `model` would fall back from the cuDNN kernel."""
    reasons = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Masking):
            reasons.append(f"{layer.name}: masking (cuDNN needs unmasked or right-padded input)")
        if not isinstance(layer, keras.layers.LSTM):
            continue
        checks = {
            "activation": (keras.activations.serialize(layer.activation), "tanh"),
            "recurrent_activation": (
                keras.activations.serialize(layer.recurrent_activation), "sigmoid"),
            "use_bias": (layer.use_bias, True),
            "unroll": (layer.unroll, False),
            "recurrent_dropout": (layer.recurrent_dropout, 0.0),
        }
        for name, (value, needed) in checks.items():
            if value != needed:
                reasons.append(f"{layer.name}: {name}={value!r}, cuDNN needs {needed!r}")
        if layer.use_cudnn not in ("auto", True):
            reasons.append(f"{layer.name}: use_cudnn={layer.use_cudnn!r}")
    return reasons


def logits_function(model: keras.Model, window: int):
    """`model` in inference mode as one traced function for any number of windows."""
    return tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, window, spec.NUM_CHANNELS], tf.float32)])
