"""Spectral front end: log band power of each EEG channel in short frames.

The classic EEG markers of workload and attention are shifts of power between
the theta, alpha and beta rhythms; a frame of 0.25 s (64 rows, hop 32) resolves
them to 4 Hz, and the LSTM follows them from frame to frame.

    EEG [b, window (or its last frame_span rows), 20]
        -> frames -> Hann -> |rfft|^2 -> mean per band -> log
        (band_power "relative": minus each channel's mean over the frames) -> [b, frames, 20 x 5]
    + ecg, r, gsr frame statistics (slow_channels.py)  -> [b, frames, 106 (+ 13 rhythm bands)]
    -> LayerNormalization (per frame: removes a window's overall gain)
    -> feature dropout
"""
from __future__ import annotations

import keras

from trainer.config import TrainConfig
from trainer.model.frontends.layers import BandLogPower, feature_dropout
from trainer.model.frontends.slow_channels import eeg, with_slow_frames

BANDS_HZ = ((1, 4), (4, 8), (8, 13), (13, 30), (30, 60))  # delta, theta, alpha, beta, gamma


def build(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    x = BandLogPower(config.frame, config.hop, BANDS_HZ, relative=config.band_power == "relative",
                     name="band_log_power")(eeg(signals, config))
    x = with_slow_frames(x, signals, config)
    x = keras.layers.LayerNormalization(name="frame_norm")(x)
    return feature_dropout(config.feature_dropout, "feature_dropout")(x)
