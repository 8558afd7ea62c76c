"""The small Keras layers the front ends are made of (registered, so `.keras` files load).

All work on [batch, time, channels] tensors; framing is `tf.signal.frame` along
time, so a front end's frames are 1 + (window - frame) // hop steps long.
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from trainer.records import spec

PACKAGE = "pilotstate"
LOG_FLOOR = 1e-6  # power floor (scaled units^2): a flat channel gives log(LOG_FLOOR), not -inf


def frames(length: Optional[int], frame: int, hop: int) -> Optional[int]:
    """How many frames of `frame` rows every `hop` rows a sequence of `length` rows has."""
    return None if length is None else 1 + (length - frame) // hop


@keras.saving.register_keras_serializable(PACKAGE)
class ChannelSlice(keras.layers.Layer):
    """Channels [start, stop) of [batch, time, channels]."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start:self.stop]

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(PACKAGE)
class BandLogPower(keras.layers.Layer):
    """Per frame and channel, the log mean power in each frequency band.

    [batch, time, channels] -> [batch, frames, channels x bands].  Each frame has
    its mean removed and a Hann window applied before the FFT; a band's power is
    the mean of |rfft|^2 / frame over its bins.  Fixed, not trained.

    With `relative`, each channel's log powers are taken relative to their mean over
    the window's frames and bands: an electrode's or a session's gain (a constant
    factor per channel) cancels, while the shares of the bands and their changes
    within the window remain.
    """

    def __init__(self, frame: int, hop: int, bands_hz: Sequence[Sequence[float]],
                 relative: bool = False, sample_rate_hz: int = spec.SAMPLE_RATE_HZ, **kwargs):
        super().__init__(**kwargs)
        self.frame, self.hop, self.sample_rate_hz = frame, hop, sample_rate_hz
        self.relative = relative
        self.bands_hz = [list(map(float, b)) for b in bands_hz]
        hz = np.fft.rfftfreq(frame, 1.0 / sample_rate_hz)
        averaging = np.zeros((hz.size, len(self.bands_hz)), np.float32)
        for j, (low, high) in enumerate(self.bands_hz):
            inside = (hz >= low) & (hz < high)
            if not inside.any():  # a band narrower than the frame's resolution: nearest bin
                inside = np.abs(hz - (low + high) / 2) == np.abs(hz - (low + high) / 2).min()
            averaging[inside, j] = 1.0 / inside.sum()
        self._averaging = tf.constant(averaging / frame)
        self._hann = tf.signal.hann_window(frame, periodic=True)

    def call(self, x):
        frames = tf.signal.frame(tf.transpose(x, [0, 2, 1]), self.frame, self.hop)  # [b, c, f, n]
        frames = (frames - tf.reduce_mean(frames, -1, keepdims=True)) * self._hann
        power = tf.math.square(tf.abs(tf.signal.rfft(frames)))
        bands = tf.math.log(tf.tensordot(power, self._averaging, 1) + LOG_FLOOR)  # [b, c, f, k]
        if self.relative:
            bands = bands - tf.reduce_mean(bands, axis=[2, 3], keepdims=True)
        bands = tf.transpose(bands, [0, 2, 1, 3])
        shape = tf.shape(bands)
        return tf.reshape(bands, [shape[0], shape[1], bands.shape[2] * bands.shape[3]])

    def compute_output_shape(self, input_shape):
        steps = frames(input_shape[1], self.frame, self.hop)
        return (input_shape[0], steps, input_shape[2] * len(self.bands_hz))

    def get_config(self):
        return {**super().get_config(), "frame": self.frame, "hop": self.hop,
                "bands_hz": self.bands_hz, "relative": self.relative,
                "sample_rate_hz": self.sample_rate_hz}


@keras.saving.register_keras_serializable(PACKAGE)
class LastRows(keras.layers.Layer):
    """The last `rows` rows of [batch, time, channels]."""

    def __init__(self, rows: int, **kwargs):
        super().__init__(**kwargs)
        self.rows = rows

    def call(self, x):
        return x[:, -self.rows:]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.rows, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "rows": self.rows}


@keras.saving.register_keras_serializable(PACKAGE)
class FrameStatistics(keras.layers.Layer):
    """Per frame and channel: the mean (optionally minus the window's mean) and the sd.

    [batch, time, channels] -> [batch, frames, 2 x channels].  With `relative`, a
    level says how the channel moved within the window, not where the session sits.
    With `span`, the frames cover only the window's last `span` rows, while the mean
    they are taken relative to is still the whole window's.
    """

    def __init__(self, frame: int, hop: int, relative: bool, span: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.frame, self.hop, self.relative, self.span = frame, hop, relative, span

    def call(self, x):
        recent = x if self.span is None else x[:, -self.span:]
        frames = tf.signal.frame(recent, self.frame, self.hop, axis=1)  # [b, f, n, c]
        mean = tf.reduce_mean(frames, 2)
        sd = tf.math.reduce_std(frames, 2)
        if self.relative:
            mean = mean - tf.reduce_mean(x, 1, keepdims=True)
        return tf.concat([mean, sd], -1)

    def compute_output_shape(self, input_shape):
        steps = frames(self.span or input_shape[1], self.frame, self.hop)
        return (input_shape[0], steps, 2 * input_shape[2])

    def get_config(self):
        return {**super().get_config(), "frame": self.frame, "hop": self.hop,
                "relative": self.relative, "span": self.span}


@keras.saving.register_keras_serializable(PACKAGE)
class WindowActivity(keras.layers.Layer):
    """Per channel over the whole window: the log variance and the log mean square of
    the first difference (Hjorth's activity, and activity x mobility^2).

    [batch, time, channels] -> [batch, 2 x channels].  Their difference is the log of
    the signal's mean squared frequency (a pace that no gain changes); on data scaled
    per pilot, each alone compares the window with the pilot's usual amplitude and pace.
    """

    def call(self, x):
        change = x[:, 1:] - x[:, :-1]
        return tf.concat([tf.math.log(tf.math.reduce_variance(x, 1) + LOG_FLOOR),
                          tf.math.log(tf.reduce_mean(tf.math.square(change), 1) + LOG_FLOOR)], -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[2])


@keras.saving.register_keras_serializable(PACKAGE)
class FrameActivity(keras.layers.Layer):
    """Per frame and channel: the log variance and the log mean square of the first
    difference (WindowActivity's two Hjorth figures, frame by frame).

    [batch, time, channels] -> [batch, frames, 2 x channels].  On data scaled per pilot
    they say how much and how fast a channel moves now against the pilot's usual; the
    second is what rolling-statistics models of this data lean on (the sd of the EEG's
    first difference over 1-4 s).
    """

    def __init__(self, frame: int, hop: int, **kwargs):
        super().__init__(**kwargs)
        self.frame, self.hop = frame, hop

    def call(self, x):
        frames = tf.signal.frame(x, self.frame, self.hop, axis=1)  # [b, f, n, c]
        change = frames[:, :, 1:] - frames[:, :, :-1]
        return tf.concat([tf.math.log(tf.math.reduce_variance(frames, 2) + LOG_FLOOR),
                          tf.math.log(tf.reduce_mean(tf.math.square(change), 2) + LOG_FLOOR)],
                         -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], frames(input_shape[1], self.frame, self.hop), 2 * input_shape[2])

    def get_config(self):
        return {**super().get_config(), "frame": self.frame, "hop": self.hop}


@keras.saving.register_keras_serializable(PACKAGE)
class LogMeanSquare(keras.layers.Layer):
    """ShallowFBCSPNet's 'square, average pool, log' over frames: [b, t, f] -> [b, frames, f]."""

    def __init__(self, frame: int, hop: int, **kwargs):
        super().__init__(**kwargs)
        self.frame, self.hop = frame, hop

    def call(self, x):
        power = tf.nn.avg_pool1d(tf.math.square(x), self.frame, self.hop, "VALID")
        return tf.math.log(power + LOG_FLOOR)

    def compute_output_shape(self, input_shape):
        steps = frames(input_shape[1], self.frame, self.hop)
        return (input_shape[0], steps, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "frame": self.frame, "hop": self.hop}


def feature_dropout(rate: float, name: str) -> keras.layers.Layer:
    """Dropout of whole features for a window (the same features at every frame)."""
    return keras.layers.SpatialDropout1D(rate, name=name)
