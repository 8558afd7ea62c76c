"""PNG plots of a finished run (matplotlib, Agg backend), in <run dir>/plots/.

loss.png       training loss and validation log loss per epoch, overall and per class,
               the exported (best) epoch marked
confusion.png  the exported epoch's validation confusion matrix
session.png    logits and probabilities over time for one validation session,
               next to its true labels
"""
from __future__ import annotations

import io
import posixpath

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import data, run_dir  # noqa: E402
from trainer import record_spec as spec  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.metrics import softmax  # noqa: E402
from trainer.predict import DEFAULT_STRIDE, segment_row_logits  # noqa: E402

PLOTS = ("loss.png", "confusion.png", "session.png")


def save_figure(fig: plt.Figure, path: str) -> None:
    """Writes a PNG through tf.io.gfile (local or gs://) and closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def loss_figure(history: list[dict], exported_epoch: int) -> plt.Figure:
    epochs = [e["epoch"] for e in history]
    fig, (overall, per_class) = plt.subplots(1, 2, figsize=(12, 4))
    overall.plot(epochs, [e["train_loss"] for e in history], "o-", label="train (weighted)")
    overall.plot(epochs, [e["valid"]["log_loss"] for e in history], "o-", label="valid")
    overall.plot(epochs, [e["valid"]["balanced_log_loss"] for e in history], "o--",
                 label="valid, balanced")
    overall.axhline(np.log(spec.NUM_CLASSES), color="grey", lw=0.8, label="ln 4 (chance)")
    for ax in (overall, per_class):
        ax.axvline(exported_epoch, color="black", ls=":", lw=1,
                   label=f"exported (epoch {exported_epoch})")
    overall.set(title="log loss", xlabel="epoch")
    overall.legend()
    for name in spec.CLASSES:
        values = [e["valid"]["per_class"][name]["log_loss"] for e in history]
        if any(v is not None for v in values):
            per_class.plot(epochs, [np.nan if v is None else v for v in values], "o-", label=name)
    per_class.set(title="validation log loss per class", xlabel="epoch")
    per_class.legend()
    return fig


def confusion_figure(confusion: list[list[int]], epoch: int) -> plt.Figure:
    matrix = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(spec.NUM_CLASSES)
    ax.set(xticks=ticks, yticks=ticks, xticklabels=spec.CLASSES, yticklabels=spec.CLASSES,
           xlabel="predicted", ylabel="true",
           title=f"validation confusion matrix, epoch {epoch} (exported)")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    return fig


def session_trace(model: keras.Model, data_dir: str, manifest: dict, config: TrainConfig
                  ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(name, time, row logits, labels) of the first validation session, time-ordered."""
    keys = (spec.CREW, spec.SEAT, spec.EXPERIMENT, spec.BLOCK, spec.CONTEXT_ROWS,
            spec.TIME, spec.LABELS)
    session, parts = None, []
    for segment, row_logits in segment_row_logits(
            model, data.shard_paths(data_dir, manifest, "valid"), config.window,
            DEFAULT_STRIDE, keys):
        key = (int(segment[spec.CREW]), int(segment[spec.SEAT]), segment[spec.EXPERIMENT])
        session = session or key
        if key == session:
            own = slice(int(segment[spec.CONTEXT_ROWS]), None)
            parts.append((int(segment[spec.BLOCK]), segment[spec.TIME][own], row_logits,
                          segment[spec.LABELS][own]))
    parts.sort(key=lambda p: p[0])
    crew, seat, experiment = session
    name = f"crew {crew} seat {seat} {experiment.decode()}"
    return (name, *(np.concatenate([p[i] for p in parts]) for i in (1, 2, 3)))


def session_figure(name: str, time: np.ndarray, logits: np.ndarray,
                   labels: np.ndarray) -> plt.Figure:
    fig, (ax_labels, ax_logits, ax_probs) = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    ax_labels.plot(time, labels, drawstyle="steps-post", color="black")
    ax_labels.set(yticks=range(spec.NUM_CLASSES), yticklabels=spec.CLASSES,
                  title=f"validation session {name}: true label", ylim=(-0.5, 3.5))
    probs = softmax(logits.astype(np.float64))
    for c, cls in enumerate(spec.CLASSES):
        ax_logits.plot(time, logits[:, c], lw=0.8, label=cls)
        ax_probs.plot(time, probs[:, c], lw=0.8, label=cls)
    ax_logits.set(title="logits")
    ax_probs.set(title="probabilities (training prior)", xlabel="time (s)", ylim=(0, 1))
    ax_logits.legend(loc="upper right")
    return fig


def write_run_plots(paths: run_dir.RunPaths, history: list[dict], exported: dict,
                    model: keras.Model, data_dir: str, manifest: dict,
                    config: TrainConfig) -> list[str]:
    """Writes the PLOTS into <run dir>/plots/; returns their paths.  `exported` is the
    epoch record (of `history`) whose weights `model` holds."""
    plot_dir = paths.file("plots")
    tf.io.gfile.makedirs(plot_dir)
    figures = [("loss.png", loss_figure(history, exported["epoch"])),
               ("confusion.png", confusion_figure(exported["valid"]["confusion"],
                                                  exported["epoch"]))]
    figures.append(("session.png", session_figure(*session_trace(model, data_dir, manifest, config))))
    written = []
    for name, fig in figures:
        save_figure(fig, posixpath.join(plot_dir, name))
        written.append(posixpath.join(plot_dir, name))
    return written
