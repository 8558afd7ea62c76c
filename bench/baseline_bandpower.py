"""A reference baseline: a linear classifier on 1-s EEG band-power shares.

Reads the same training and balanced validation windows as the trainer (its own
tf.data pipelines, so the same balancing and the same validation windows) and fits
a softmax regression on per-window features: the share of each EEG channel's
power in the theta, alpha, beta and gamma bands, and the mean, sd and trend of
ecg, r and gsr.  It shows what the data allow a simple model to reach, next to
the LSTM's balanced validation log loss.

The means of ecg, r and gsr are levels: they identify a pilot and a stretch of a
session more than a state (see trainer/model/frontends/slow_channels.py), which helps on
validation windows from the training sessions (time blocks) and not on unseen ones.
`--no-levels` leaves them out, which is what the LSTM sees by default.

    python bench/baseline_bandpower.py --data demo-out/data [--batches 40] [--no-levels]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import keras  # noqa: E402

from trainer.config import TrainConfig  # noqa: E402
from trainer.data import datasets as data  # noqa: E402
from trainer.records.spec import SAMPLE_RATE_HZ  # noqa: E402
from trainer.shared.metrics import classification_metrics, softmax  # noqa: E402

EEG = slice(0, 20)
OTHER = slice(20, 23)
BANDS_HZ = ((4, 8), (8, 13), (13, 30), (30, 60))


def features(windows: np.ndarray, levels: bool = True) -> np.ndarray:
    """[n, window, 23] -> [n, 20 x 4 band shares + 3 x 3 statistics] (3 x 2 without the
    levels: the slow channels' window means)."""
    spectrum = np.abs(np.fft.rfft(windows - windows.mean(1, keepdims=True), axis=1)) ** 2
    hz = np.fft.rfftfreq(windows.shape[1], 1.0 / SAMPLE_RATE_HZ)
    power = np.stack([spectrum[:, (hz >= lo) & (hz < hi), EEG].sum(1) for lo, hi in BANDS_HZ], -1)
    shares = power / np.maximum(power.sum(-1, keepdims=True), 1e-12)
    other = windows[:, :, OTHER]
    quarter = windows.shape[1] // 4
    trend = other[:, -quarter:].mean(1) - other[:, :quarter].mean(1)
    statistics = [other.mean(1), other.std(1), trend] if levels else [other.std(1), trend]
    return np.concatenate([shares.reshape(len(windows), -1), *statistics], 1)


def run(data_dir: str, seed: int = 0, batches: int = 40, levels: bool = True) -> dict:
    """Fits the baseline on `batches` training batches; its balanced validation scores."""
    manifest = data.read_manifest(data_dir)
    config = data.resolve_window(TrainConfig(seed=seed, global_batch_size=512), manifest)
    train_x, train_y = [], []
    for x, y, _ in data.train_dataset(data_dir, manifest, config, 512).take(batches):
        train_x.append(features(x.numpy(), levels))
        train_y.append(y.numpy())
    valid_x, valid_y = [], []
    for x, y in data.valid_dataset(data_dir, manifest, config):
        valid_x.append(features(x.numpy(), levels))
        valid_y.append(y.numpy())
    train_x, train_y = np.concatenate(train_x), np.concatenate(train_y)
    valid_x, valid_y = np.concatenate(valid_x), np.concatenate(valid_y)
    center, scale = train_x.mean(0), train_x.std(0) + 1e-6

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((train_x.shape[1],)), keras.layers.Dense(4)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((train_x - center) / scale, train_y, epochs=20, batch_size=256, verbose=0)
    metrics = classification_metrics(softmax(model.predict((valid_x - center) / scale, verbose=0)),
                                     valid_y)
    return {"train_windows": int(len(train_y)), "valid_windows": int(len(valid_y)),
            "valid_balanced_log_loss": round(metrics["balanced_log_loss"], 4),
            "valid_balanced_accuracy": round(metrics["balanced_accuracy"], 4),
            "per_class_log_loss": {k: round(v["log_loss"], 4)
                                   for k, v in metrics["per_class"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="beam_preprocess output directory")
    parser.add_argument("--batches", type=int, default=40,
                        help="training batches of 512 windows; default 40")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--no-levels", dest="levels", action="store_false",
                        help="leave out the slow channels' window means (session levels)")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.seed, args.batches, args.levels), indent=2))


if __name__ == "__main__":
    main()
