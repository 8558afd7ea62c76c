"""Context front end: every channel over the whole window, in frames long enough to
separate the EEG's slow rhythms, measured against the pilot's usual level.

Where the spectral front end reads the EEG's band *shares* in the window's last
second, this one reads what rolling-statistics models of this data lean on:
sustained changes of activity over seconds.  Frames of `frame` rows (the default
256: 1 s, 1-Hz bins, so delta 1-4 Hz no longer shares a bin with theta) cover the
whole window; band power is absolute, so on data scaled per pilot (`beam_preprocess
--scale-by pilot`) it is the pilot's own level that a state moves it from.

    EEG [b, window, 20] -> frames -> Hann -> |rfft|^2 -> mean per band -> log  [b, frames, 20 x 5]
    all 23 channels: log variance and log mean square of the first difference
        per frame (FrameActivity)                                           [b, frames, 46]
    ecg, r, gsr: frame mean and sd as levels                                 [b, frames, 6]
        + frame statistics, heart and breathing rhythms (slow_channels.py)
    -> LayerNormalization -> feature dropout
"""
from __future__ import annotations

import keras

from trainer.config import TrainConfig
from trainer.model.frontends.layers import (BandLogPower, ChannelSlice, FrameActivity,
                                            FrameStatistics, feature_dropout)
from trainer.model.frontends.slow_channels import NUM_EEG, slow, slow_frames
from trainer.model.frontends.spectral import BANDS_HZ


def build(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    rows = signals.shape[1]
    eeg = ChannelSlice(0, NUM_EEG, name="eeg")(signals)
    parts = [BandLogPower(config.frame, config.hop, BANDS_HZ, relative=False,
                          name="band_log_power")(eeg)]
    every_channel = eeg if config.slow_channels == "none" else signals
    parts.append(FrameActivity(config.frame, config.hop, name="frame_activity")(every_channel))
    if config.slow_channels != "none":
        parts.append(slow_frames(signals, config, rows))
        if config.slow_channels != "levels":  # levels: slow_frames has them already
            parts.append(FrameStatistics(config.frame, config.hop, relative=False,
                                         name="slow_levels")(slow(signals, "slow_for_levels")))
    x = keras.layers.Concatenate(name="frame_features")(parts)
    x = keras.layers.LayerNormalization(name="frame_norm")(x)
    return feature_dropout(config.feature_dropout, "feature_dropout")(x)
