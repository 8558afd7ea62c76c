"""The slow channels (ecg, r, gsr) as frame features beside the EEG ones.

Their absolute levels identify a pilot and a stretch of a session (each seat has
its own DC level, drifts and drop-outs), not a state, so by default
(`slow_channels="relative"`) a frame's level is taken relative to the window's
mean: how the channel moved within the window (a skin-conductance response, a
breath), next to its spread in the frame (beat and breath amplitude).  `levels`
keeps the absolute frame means, for comparison; `none` drops the channels.
"""
from __future__ import annotations

from typing import Optional

import keras

from trainer import record_spec as spec
from trainer.config import TrainConfig
from trainer.frontends.layers import ChannelSlice, FrameStatistics

NUM_EEG = sum(name.startswith("eeg_") for name in spec.CHANNELS)
assert all(name.startswith("eeg_") for name in spec.CHANNELS[:NUM_EEG])


def eeg(signals: keras.KerasTensor) -> keras.KerasTensor:
    """[batch, window, 20]: the EEG channels."""
    return ChannelSlice(0, NUM_EEG, name="eeg")(signals)


def slow_frames(signals: keras.KerasTensor, config: TrainConfig) -> Optional[keras.KerasTensor]:
    """[batch, frames, 6] statistics of ecg, r and gsr per frame, or None (`none`)."""
    if config.slow_channels == "none":
        return None
    slow = ChannelSlice(NUM_EEG, spec.NUM_CHANNELS, name="slow")(signals)
    return FrameStatistics(config.frame, config.hop, relative=config.slow_channels == "relative",
                           name="slow_frames")(slow)


def with_slow_frames(eeg_frames: keras.KerasTensor, signals: keras.KerasTensor,
                     config: TrainConfig) -> keras.KerasTensor:
    """EEG frame features with the slow channels' frame features appended."""
    slow = slow_frames(signals, config)
    if slow is None:
        return eeg_frames
    return keras.layers.Concatenate(name="frame_features")([eeg_frames, slow])
