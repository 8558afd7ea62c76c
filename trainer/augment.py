"""Augmentation of training windows: what varies between pilots, days and electrodes.

All of it is stateless and seeded (a seed per batch or group of windows from the
pipeline's seeded stream), so a pipeline stays deterministic for a seed.  Each
kind is off at 0 (see TrainConfig's `augment_*` fields):

* per-channel gain: electrodes and amplifiers differ in gain between sessions
  (the scaled data still differ by up to 2x between crews), so each channel of a
  window is multiplied by exp(N(0, augment_gain));
* time shift: the window's content ends up to `augment_shift` rows before its
  labelled row, so the model does not key on the exact phase of a frame;
* channel dropout: a channel is zeroed (a flat line after scaling, as drop-outs
  and flat-lined electrodes look) with probability `augment_channel_dropout`;
* noise: Gaussian noise of sd `augment_noise` (scaled units) is added.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.config import TrainConfig


def shifted_ends(ends: tf.Tensor, floor, max_shift: int, seed: tf.Tensor) -> tf.Tensor:
    """Window ends moved back by 0..max_shift rows, never before `floor` (the end of
    their segment's first full window: a scalar, or one per end)."""
    if max_shift <= 0:
        return ends
    shift = tf.random.stateless_uniform(tf.shape(ends), seed, 0, max_shift + 1, dtype=tf.int64)
    return tf.maximum(ends - tf.cast(shift, ends.dtype), tf.cast(floor, ends.dtype))


def augment_windows(windows: tf.Tensor, seed: tf.Tensor, config: TrainConfig) -> tf.Tensor:
    """Gain, channel dropout and noise applied to windows [batch, window, channels]."""
    gain_seed, drop_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    batch, channels = tf.shape(windows)[0], tf.shape(windows)[2]
    per_channel = [batch, 1, channels]
    if config.augment_gain > 0:
        windows = windows * tf.exp(tf.random.stateless_normal(
            per_channel, gain_seed, stddev=config.augment_gain))
    if config.augment_channel_dropout > 0:
        keep = tf.random.stateless_uniform(per_channel, drop_seed) >= config.augment_channel_dropout
        windows = windows * tf.cast(keep, windows.dtype)
    if config.augment_noise > 0:
        windows = windows + tf.random.stateless_normal(
            tf.shape(windows), noise_seed, stddev=config.augment_noise)
    return windows
