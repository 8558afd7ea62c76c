"""Model (front ends, cuDNN eligibility), config, metrics and prior correction."""
import argparse
import importlib
import json
import math

import keras
import numpy as np
import pytest

from trainer import config as config_mod
from trainer.config import FRONT_ENDS, SLOW_CHANNEL_MODES, TrainConfig
from trainer.model.frontends.layers import LOG_FLOOR, FrameActivity, WindowActivity
from trainer.model.frontends.slow_channels import HEART_BANDS_HZ
from trainer.model.network import build_model, cudnn_blockers
from trainer.prediction.prior import correct_prior, parse_prior
from trainer.shared.metrics import classification_metrics, softmax

# The module (the package re-exports a function of the same name).
tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")


@pytest.mark.parametrize("front_end,slow_channels",
                         [(f, "rhythms") for f in FRONT_ENDS]
                         + [("spectral", mode) for mode in SLOW_CHANNEL_MODES])
def test_lstm_layers_keep_the_cudnn_settings(front_end, slow_channels):
    model = build_model(TrainConfig(front_end=front_end, window=128, frame=32, hop=16, pool=2,
                                    filters=4, lstm_units=(8, 6), dropout=0.3,
                                    slow_channels=slow_channels, frame_span=96))
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert [layer.units for layer in lstms] == [8, 6]
    for layer in lstms:
        # The argument check Keras runs before choosing the cuDNN kernel.
        assert tf_rnn._do_lstm_arguments_support_cudnn(
            layer.activation, layer.recurrent_activation, layer.unroll, layer.use_bias)
        assert layer.recurrent_dropout == 0 and layer.use_cudnn == "auto"
        assert layer.dropout == 0.3
    assert not any(isinstance(layer, keras.layers.Masking) for layer in model.layers)
    assert cudnn_blockers(model) == []
    assert model.output_shape == (None, 4)


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_end_frames_and_saved_model_round_trip(front_end, tmp_path):
    """Each front end's sequence length, and a .keras file that loads (custom layers
    registered) and computes the same logits."""
    config = TrainConfig(front_end=front_end, window=256, frame=64, hop=32, pool=4, filters=4,
                         lstm_units=(8,))
    model = build_model(config)
    sequence = model.get_layer("lstm_0").input.shape
    assert sequence[1] == (256 // 4 if front_end == "raw" else 1 + (256 - 64) // 32)
    windows = np.random.default_rng(0).standard_normal((3, 256, 23)).astype(np.float32)
    windows[0, :, 5] = 0.0  # a flat channel must not give inf or NaN
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    expected = model(windows, training=False).numpy()
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(loaded(windows, training=False).numpy(), expected, rtol=1e-5,
                               atol=1e-6)


def test_relative_band_power_ignores_a_channel_gain():
    """band_power='relative' cancels a constant gain per channel; 'absolute' does not."""
    windows = np.random.default_rng(1).standard_normal((2, 256, 23)).astype(np.float32)
    louder = windows * np.linspace(0.5, 3.0, 23, dtype=np.float32)
    for mode, same in (("relative", True), ("absolute", False)):
        model = build_model(TrainConfig(window=256, band_power=mode, slow_channels="none",
                                        lstm_units=(4,)))
        features = keras.Model(model.input, model.get_layer("band_log_power").output)
        close = np.allclose(features(windows).numpy(), features(louder).numpy(), atol=1e-2)
        assert close == same, mode


@pytest.mark.parametrize("front_end", ("spectral", "filterbank"))
def test_frame_span_frames_the_windows_end_and_keeps_the_whole_window_as_context(front_end):
    """With frame_span the EEG frames see only the window's last rows, while the slow
    channels' levels are taken relative to the whole window's mean."""
    model = build_model(TrainConfig(front_end=front_end, window=512, frame_span=256, filters=4,
                                    lstm_units=(4,)))
    assert model.get_layer("lstm_0").input.shape[1] == 1 + (256 - 64) // 32
    eeg_features = keras.Model(model.input, model.get_layer(
        "band_log_power" if front_end == "spectral" else "log_power").output)
    slow_features = keras.Model(model.input, model.get_layer("slow_frames").output)
    windows = np.random.default_rng(2).standard_normal((2, 512, 23)).astype(np.float32)
    earlier = windows.copy()
    earlier[:, :256] += np.random.default_rng(3).standard_normal((2, 256, 23)).astype(np.float32)
    np.testing.assert_allclose(eeg_features(earlier).numpy(), eeg_features(windows).numpy(),
                               atol=1e-5)
    assert not np.allclose(slow_features(earlier).numpy(), slow_features(windows).numpy(),
                           atol=1e-3)


def test_heart_rhythm_bands_peak_at_the_heart_rate_whatever_the_gain():
    """slow_channels='rhythms': the shares of ecg's power over the window peak in the band
    of the beat's rate, for a spiky ECG-like wave with harmonics, at any amplitude."""
    model = build_model(TrainConfig(window=1024, slow_channels="rhythms", lstm_units=(4,)))
    heart = keras.Model(model.input, model.get_layer("heart_shares").output)
    seconds = np.arange(1024) / 256.0
    for bpm, band in ((78, (1.25, 1.5)), (126, (2.0, 2.25))):
        windows = np.random.default_rng(4).standard_normal((1, 1024, 23)).astype(np.float32)
        beat = np.cos(2 * np.pi * bpm / 60 * seconds) ** 15  # narrow peaks: many harmonics
        windows[0, :, 20] = beat + 0.05 * windows[0, :, 20]
        windows = np.concatenate([windows, windows])
        windows[1, :, 20] *= 40.0
        shares = heart(windows).numpy()
        assert [HEART_BANDS_HZ[i] for i in shares.argmax(axis=1)] == [band, band], bpm
        np.testing.assert_allclose(shares[0], shares[1], atol=1e-2)  # float32 FFT


def test_slow_activity_gives_each_channel_its_pace_and_amplitude():
    """WindowActivity over the window: log variance and log mean square of the change.
    Their difference (the log mean squared frequency) follows the rate, not the gain;
    the change's power alone follows both (on data scaled per pilot: the pace and
    amplitude against the pilot's usual)."""
    seconds = np.arange(1024) / 256.0
    x = np.zeros((3, 1024, 3), np.float32)
    for row, (hz, gain) in enumerate(((1.0, 1.0), (2.0, 1.0), (1.0, 5.0))):
        x[row, :, 0] = gain * np.sin(2 * np.pi * hz * seconds) + 7.0  # a level: no effect
    activity = WindowActivity()(x).numpy()  # [3, 6]: 3 log variances, 3 log changes
    log_variance, log_change = activity[:, 0], activity[:, 3]
    pace = log_change - log_variance
    expected = [2 * np.log(2 * np.sin(np.pi * hz / 256)) for hz in (1.0, 2.0, 1.0)]
    np.testing.assert_allclose(pace, expected, atol=1e-2)  # float32 sums
    np.testing.assert_allclose(log_variance[2] - log_variance[0], 2 * np.log(5.0), atol=1e-3)
    np.testing.assert_allclose(activity[:, [1, 2, 4, 5]], np.log(LOG_FLOOR), atol=1e-3)  # flat


def test_frame_activity_is_each_frames_log_variance_and_log_change():
    """FrameActivity: WindowActivity's two figures for every frame, as numpy computes them."""
    x = np.random.default_rng(5).standard_normal((2, 512, 3)).astype(np.float32)
    x[1, 256:, 1] *= 4.0  # louder in the window's second half
    x[:, :, 2] = 3.0  # flat: the floor, not -inf
    got = FrameActivity(256, 128)(x).numpy()  # [2, 3 frames, 6]
    assert got.shape == (2, 3, 6)
    for f, start in enumerate((0, 128, 256)):
        frame = x[:, start:start + 256].astype(np.float64)
        np.testing.assert_allclose(got[:, f, :3], np.log(frame.var(axis=1) + LOG_FLOOR),
                                   atol=1e-3)
        change = np.diff(frame, axis=1)
        np.testing.assert_allclose(got[:, f, 3:], np.log((change ** 2).mean(axis=1) + LOG_FLOOR),
                                   atol=1e-3)
    np.testing.assert_allclose(got[1, 2, 1] - got[1, 0, 1], 2 * np.log(4.0), atol=0.2)


def test_context_front_end_reads_the_whole_window_at_the_pilots_level():
    """front_end='context': frames over the whole window (a change in its first second
    moves the EEG features), band power absolute (a channel gain moves them too, which
    on data scaled per pilot is a change against the pilot's level), the first
    difference's activity for every channel and the slow channels' levels."""
    model = build_model(TrainConfig(front_end="context", window=1024, frame=256, hop=128,
                                    lstm_units=(4,)))
    assert model.get_layer("lstm_0").input.shape[1] == 1 + (1024 - 256) // 128
    eeg_power = keras.Model(model.input, model.get_layer("band_log_power").output)
    activity = keras.Model(model.input, model.get_layer("frame_activity").output)
    levels = keras.Model(model.input, model.get_layer("slow_levels").output)
    assert activity.output.shape[-1] == 2 * 23 and levels.output.shape[-1] == 2 * 3
    windows = np.random.default_rng(6).standard_normal((2, 1024, 23)).astype(np.float32)
    earlier = windows.copy()
    earlier[:, :256, :20] *= 3.0
    first = eeg_power(earlier).numpy() - eeg_power(windows).numpy()
    assert np.abs(first[:, 0]).min() > 1.0  # the first frame: 3x louder, log power + 2.2
    np.testing.assert_allclose(first[:, -1], 0.0, atol=1e-4)  # the last: untouched
    raised = windows.copy()
    raised[:, :, 22] += 2.0  # gsr above its usual
    moved = levels(raised).numpy() - levels(windows).numpy()
    np.testing.assert_allclose(moved[..., 2], 2.0, atol=1e-4)  # gsr's frame mean


def test_cudnn_blockers_name_what_breaks_the_fused_kernel():
    inputs = keras.Input((16, 23))
    x = keras.layers.Masking()(inputs)
    x = keras.layers.LSTM(4, recurrent_dropout=0.1, activation="relu", name="slow")(x)
    reasons = cudnn_blockers(keras.Model(inputs, keras.layers.Dense(4)(x)))
    assert any("masking" in r for r in reasons)
    assert any("slow: recurrent_dropout=0.1" in r for r in reasons)
    assert any("slow: activation='relu'" in r for r in reasons)


def test_config_file_then_command_line(tmp_path):
    path = str(tmp_path / "config.json")
    TrainConfig(lstm_units=(32,), learning_rate=0.5, epochs=3).save(path)
    parser = argparse.ArgumentParser()
    config_mod.add_config_arguments(parser)
    args = parser.parse_args(["--config", path, "--epochs", "7", "--lstm-units", "8,4",
                              "--devices", "/cpu:0,/cpu:1"])
    config = config_mod.config_from_args(args)
    assert config.lstm_units == (8, 4) and config.epochs == 7 and config.learning_rate == 0.5
    assert config.devices == ("/cpu:0", "/cpu:1")
    assert TrainConfig.load(path).lstm_units == (32,)
    assert config.digest() != TrainConfig.load(path).digest()


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"epocs": 3}))
    with pytest.raises(ValueError, match=r"bad.json: unknown config keys \['epocs'\]"):
        TrainConfig.load(str(path))
    with pytest.raises(ValueError, match="balancing 'oversample'"):
        TrainConfig(balancing="oversample")
    with pytest.raises(ValueError, match="not a multiple of pool"):
        TrainConfig(front_end="raw", window=30, pool=4)
    with pytest.raises(ValueError, match="shorter than a frame"):
        TrainConfig(window=30, frame=64)
    with pytest.raises(ValueError, match=r"frame_span 32 is shorter than a frame \(64\)"):
        TrainConfig.from_dict({"frame_span": "32"})
    with pytest.raises(ValueError, match="front_end 'cnn' is not one of"):
        TrainConfig(front_end="cnn")
    with pytest.raises(ValueError, match="augment_channel_dropout 1.0 outside"):
        TrainConfig(augment_channel_dropout=1.0)
    with pytest.raises(ValueError, match="temperature_scaling: 'maybe' is not true or false"):
        TrainConfig.from_dict({"temperature_scaling": "maybe"})
    assert TrainConfig.from_dict({"temperature_scaling": "false"}).temperature_scaling is False


def test_metrics_per_class_and_confusion():
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25], [0.1, 0.1, 0.1, 0.7]])
    labels = np.array([0, 0, 3])
    m = classification_metrics(probs, labels)
    assert m["per_class"]["A"]["log_loss"] == pytest.approx((-math.log(0.7) - math.log(0.25)) / 2)
    assert m["per_class"]["D"]["log_loss"] == pytest.approx(-math.log(0.7))
    assert m["per_class"]["B"]["count"] == 0 and m["per_class"]["B"]["log_loss"] is None
    assert m["balanced_log_loss"] == pytest.approx(
        (m["per_class"]["A"]["log_loss"] + m["per_class"]["D"]["log_loss"]) / 2)
    assert m["confusion"][0] == [2, 0, 0, 0] and m["confusion"][3] == [0, 0, 0, 1]
    np.testing.assert_allclose(softmax(np.log(probs)), probs)


def test_prior_correction_is_bayes_rule():
    probs = np.array([[0.25, 0.25, 0.25, 0.25], [0.4, 0.3, 0.2, 0.1]])
    target = np.array([0.58, 0.03, 0.34, 0.05])
    corrected = correct_prior(probs, np.full(4, 0.25), target)
    np.testing.assert_allclose(corrected[0], target)       # no evidence: the target prior
    expected = probs[1] * target / (probs[1] * target).sum()
    np.testing.assert_allclose(corrected[1], expected)
    np.testing.assert_allclose(corrected.sum(axis=1), 1.0)
    # Back to the training prior: unchanged.
    np.testing.assert_allclose(correct_prior(probs, np.full(4, 0.25), np.full(4, 0.25)), probs)


def test_parse_prior():
    manifest = {"A": 6, "B": 1, "C": 2, "D": 1}  # the training rows per class
    assert parse_prior("none", manifest) is None
    np.testing.assert_allclose(parse_prior("train", manifest), [0.6, 0.1, 0.2, 0.1])
    np.testing.assert_allclose(parse_prior("uniform", manifest), 0.25)
    np.testing.assert_allclose(parse_prior("A=0.58,B=0.03,C=0.34,D=0.05", manifest),
                               [0.58, 0.03, 0.34, 0.05])
    with pytest.raises(ValueError, match=r"no share for \['D'\]"):
        parse_prior("A=0.5,B=0.2,C=0.3", manifest)
    with pytest.raises(ValueError, match="'E=1' is not CLASS=SHARE"):
        parse_prior("A=0.5,E=1", manifest)
    with pytest.raises(ValueError, match="give the shares"):
        parse_prior("train", None)
