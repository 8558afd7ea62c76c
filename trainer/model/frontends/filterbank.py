"""Learned filter-bank front end, in the manner of braindecode's ShallowFBCSPNet.

Instead of fixed bands, the network learns spatial filters (weighted sums of the
EEG channels) and a temporal filter for each, then takes the log mean square per
frame: a learned band-power feature per filter, as FBCSP pairs a spatial filter
with a band, which the LSTM follows from frame to frame.

ShallowFBCSPNet convolves every channel with every temporal filter before mixing
channels; here each filter is one spatial filter followed by its own temporal
filter (a depthwise convolution), the same family of band-power features at ~1/20
of the cost, which is what makes it trainable on a CPU (436 ms a step at window
256 for the full product, against ~25 ms here and 20 ms for the spectral front end).

    EEG [b, window, 20] -> spatial filters (filters)          [b, window, filters]
        -> temporal filter per spatial filter (~0.1 s, same length)
        -> square -> mean over frames (frame, hop) -> log   -> [b, frames, filters]
    + ecg, r, gsr frame statistics (slow_channels.py)
    -> LayerNormalization -> feature dropout
"""
from __future__ import annotations

import keras

from trainer.config import TrainConfig
from trainer.model.frontends.layers import LogMeanSquare, feature_dropout
from trainer.model.frontends.slow_channels import eeg, with_slow_frames

KERNEL_ROWS = 25  # ~0.1 s at 256 Hz, ShallowFBCSPNet's temporal kernel


def build(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    x = keras.layers.Dense(config.filters, use_bias=False,
                           name="spatial_filters")(eeg(signals, config))
    x = keras.layers.DepthwiseConv1D(KERNEL_ROWS, padding="same", name="temporal_filters")(x)
    x = LogMeanSquare(config.frame, config.hop, name="log_power")(x)
    x = with_slow_frames(x, signals, config)
    x = keras.layers.LayerNormalization(name="frame_norm")(x)
    return feature_dropout(config.feature_dropout, "feature_dropout")(x)
