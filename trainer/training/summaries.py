"""TensorBoard logs: training scalars every few steps, validation metrics per epoch.

`train/` holds loss, learning rate and throughput; `valid/` holds, per epoch,
overall and per-class log loss and accuracy on the windows each epoch is scored on
(by default a fixed subsample, which its `windows` text names), histograms of each
class's logit, and the confusion matrix as a text table; `valid_all/` the exported
epoch's metrics on every validation window, uncalibrated and calibrated.
"""
from __future__ import annotations

import posixpath

import numpy as np
import tensorflow as tf

from trainer.records.spec import CLASSES


class TensorBoardLog:
    def __init__(self, log_dir: str):
        self._log_dir = log_dir
        self._train = tf.summary.create_file_writer(posixpath.join(log_dir, "train"))
        self._valid = tf.summary.create_file_writer(posixpath.join(log_dir, "valid"))

    def train_scalars(self, step: int, scalars: dict[str, float]) -> None:
        with self._train.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)

    def validation(self, step: int, metrics: dict, logits: np.ndarray) -> None:
        with self._valid.as_default(step=step):
            for name in ("log_loss", "balanced_log_loss", "accuracy", "balanced_accuracy"):
                tf.summary.scalar(name, metrics[name])
            for name, per in metrics["per_class"].items():
                if per["count"]:
                    tf.summary.scalar(f"log_loss/{name}", per["log_loss"])
                    tf.summary.scalar(f"accuracy/{name}", per["accuracy"])
            for c, name in enumerate(CLASSES):
                tf.summary.histogram(f"logits/{name}", logits[:, c])
            tf.summary.text("confusion", confusion_markdown(metrics["confusion"]))
        self._valid.flush()

    def describe_validation(self, windows: str) -> None:
        """Says which windows the epochs' `valid/` metrics are of (e.g. a subsample)."""
        with self._valid.as_default(step=0):
            tf.summary.text("windows", f"each epoch's validation: {windows}; the exported "
                            "epoch's on all windows: `valid_all/`")
        self._valid.flush()

    def exported(self, step: int, metrics: dict, calibrated: dict, temperature: float) -> None:
        """The exported epoch's metrics on the whole validation split (`valid_all/`), at
        its step: uncalibrated, and calibrated at its temperature."""
        writer = tf.summary.create_file_writer(posixpath.join(self._log_dir, "valid_all"))
        with writer.as_default(step=step):
            for name in ("log_loss", "balanced_log_loss", "accuracy", "balanced_accuracy"):
                tf.summary.scalar(name, metrics[name])
                tf.summary.scalar(f"calibrated/{name}", calibrated[name])
            for name, per in metrics["per_class"].items():
                if per["count"]:
                    tf.summary.scalar(f"log_loss/{name}", per["log_loss"])
                    tf.summary.scalar(f"accuracy/{name}", per["accuracy"])
            tf.summary.scalar("temperature", temperature)
            tf.summary.text("confusion", confusion_markdown(metrics["confusion"]))
        writer.close()

    def flush(self) -> None:
        self._train.flush()
        self._valid.flush()


def confusion_markdown(confusion: list[list[int]]) -> str:
    header = "| true \\ predicted | " + " | ".join(CLASSES) + " |"
    rule = "|---" * (len(CLASSES) + 1) + "|"
    rows = [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
            for name, row in zip(CLASSES, confusion)]
    return "\n".join([header, rule, *rows])
