"""The slow channels (ecg, r, gsr) as frame features beside the EEG ones.

Their absolute levels identify a pilot and a stretch of a session (each seat has
its own DC level, drifts and drop-outs), not a state, so a frame's level is taken
relative to the window's mean: how the channel moved within the window (a
skin-conductance response, a breath), next to its spread in the frame (beat and
breath amplitude).  That alone is `relative`; `levels` keeps the absolute frame
means, for comparison; `none` drops the channels.

`rhythms` (the default) adds what heart and breathing show over several seconds,
which a frame of a fraction of a second cannot, taken over the whole window and
given to every frame: the shares of ecg's power in 0.25-Hz bands from 0.75 to 3 Hz
(45-180 beats/min) and of r's from 0.1 to 0.75 Hz (4 s resolve 0.25 Hz), and each
slow channel's activity and pace (`WindowActivity`: on data scaled per pilot, how
much and how fast it moves against the pilot's usual).

`config.frame_span` lets the frames cover only the window's end (the EEG's state
now) while the whole window is context for the slow channels' mean, rhythms and pace.
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np

from trainer.config import TrainConfig
from trainer.model.frontends.layers import (BandLogPower, ChannelSlice, FrameStatistics, LastRows,
                                            WindowActivity, frames)
from trainer.records import spec

NUM_EEG = sum(name.startswith("eeg_") for name in spec.CHANNELS)
assert all(name.startswith("eeg_") for name in spec.CHANNELS[:NUM_EEG])
ECG, R = spec.CHANNELS.index("ecg"), spec.CHANNELS.index("r")
HEART_BANDS_HZ = tuple((float(f), float(f) + 0.25) for f in np.arange(0.75, 3.0, 0.25))
BREATH_BANDS_HZ = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.45), (0.45, 0.75))


def span(signals: keras.KerasTensor, config: TrainConfig) -> int:
    """Rows at the window's end that the frames cover."""
    return min(config.frame_span or signals.shape[1], signals.shape[1])


def eeg(signals: keras.KerasTensor, config: TrainConfig) -> keras.KerasTensor:
    """[batch, span, 20]: the EEG channels of the rows the frames cover."""
    x = ChannelSlice(0, NUM_EEG, name="eeg")(signals)
    return LastRows(span(signals, config), name="eeg_span")(x)


def slow(signals: keras.KerasTensor, name: str = "slow") -> keras.KerasTensor:
    """[batch, window, 3]: ecg, r and gsr."""
    return ChannelSlice(NUM_EEG, spec.NUM_CHANNELS, name=name)(signals)


def slow_frames(signals: keras.KerasTensor, config: TrainConfig,
                rows: Optional[int] = None) -> Optional[keras.KerasTensor]:
    """[batch, frames, 6 (+ rhythm bands)] features of ecg, r and gsr per frame over the
    window's last `rows` rows (default: the frames' span), or None."""
    if config.slow_channels == "none":
        return None
    rows = rows or span(signals, config)
    x = FrameStatistics(config.frame, config.hop, relative=config.slow_channels != "levels",
                        span=rows, name="slow_frames")(slow(signals))
    if config.slow_channels != "rhythms":
        return x
    return keras.layers.Concatenate(name="slow_features")(
        [x, *window_rhythms(signals, frames(rows, config.frame, config.hop))])


def window_rhythms(signals: keras.KerasTensor, steps: int) -> list[keras.KerasTensor]:
    """What heart and breathing show over the whole window, given to each of `steps`
    frames: ecg's and r's band shares, and each slow channel's activity and pace."""
    parts = []
    for name, channel, bands in (("heart", ECG, HEART_BANDS_HZ), ("breath", R, BREATH_BANDS_HZ)):
        channel_signal = ChannelSlice(channel, channel + 1, name=name)(signals)
        power = BandLogPower(signals.shape[1], signals.shape[1], bands, relative=True,
                             name=f"{name}_bands")(channel_signal)
        power = keras.layers.Reshape((len(bands),), name=f"{name}_shares")(power)
        parts.append(keras.layers.RepeatVector(steps, name=f"{name}_at_every_frame")(power))
    activity = WindowActivity(name="slow_activity")(slow(signals, "slow_window"))
    parts.append(keras.layers.RepeatVector(steps, name="activity_at_every_frame")(activity))
    return parts


def with_slow_frames(eeg_frames: keras.KerasTensor, signals: keras.KerasTensor,
                     config: TrainConfig) -> keras.KerasTensor:
    """EEG frame features with the slow channels' frame features appended."""
    slow_features = slow_frames(signals, config)
    if slow_features is None:
        return eeg_frames
    return keras.layers.Concatenate(name="frame_features")([eeg_frames, slow_features])
