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
* noise: Gaussian noise of sd `augment_noise` (scaled units) is added.  It is
  taken from a bank of standard normal rows (`noise_bank`, drawn once per run): each
  window adds the bank's rows from a random offset.  Drawing a fresh normal for
  every value of every window cost 10x all the rest of cutting a batch on a CPU
  (19k against 186k windows/s), and the trainer cuts windows on the device it trains
  on, so that cost would come straight off training.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.config import TrainConfig

NOISE_BANK_ROWS = 1 << 16  # 256 s of 23 channels, 6 MiB of float32


def shifted_ends(ends: tf.Tensor, floor, max_shift: int, seed: tf.Tensor) -> tf.Tensor:
    """Window ends moved back by 0..max_shift rows, never before `floor` (the end of
    their segment's first full window: a scalar, or one per end)."""
    if max_shift <= 0:
        return ends
    shift = tf.random.stateless_uniform(tf.shape(ends), seed, 0, max_shift + 1, dtype=tf.int64)
    return tf.maximum(ends - tf.cast(shift, ends.dtype), tf.cast(floor, ends.dtype))


def noise_bank(seed: int, channels: int, sd: float) -> tf.Tensor:
    """The normal rows [NOISE_BANK_ROWS, channels] of standard deviation `sd` that windows
    take their noise from."""
    return tf.random.stateless_normal([NOISE_BANK_ROWS, channels], seed=[seed, 0x6E6F6973],
                                      stddev=sd)


def augment_windows(windows: tf.Tensor, seed: tf.Tensor, config: TrainConfig,
                    bank: tf.Tensor) -> tf.Tensor:
    """Gain, channel dropout and noise (from `bank`, noise_bank(..., config.augment_noise))
    applied to windows [batch, window, channels].  Gain and dropout are one per-channel
    factor, so that the windows are read and written as few times as possible."""
    gain_seed, drop_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    batch, length, channels = tf.unstack(tf.shape(windows))
    per_channel = [batch, 1, channels]
    factor = None
    if config.augment_gain > 0:
        factor = tf.exp(tf.random.stateless_normal(per_channel, gain_seed,
                                                   stddev=config.augment_gain))
    if config.augment_channel_dropout > 0:
        keep = tf.cast(tf.random.stateless_uniform(per_channel, drop_seed)
                       >= config.augment_channel_dropout, windows.dtype)
        factor = keep if factor is None else factor * keep
    if factor is not None:
        windows = windows * factor
    if config.augment_noise > 0:
        starts = tf.random.stateless_uniform([batch], noise_seed, 0,
                                             NOISE_BANK_ROWS - length + 1, dtype=tf.int32)
        windows = windows + tf.gather(bank, starts[:, None] + tf.range(length)[None, :])
    return windows
