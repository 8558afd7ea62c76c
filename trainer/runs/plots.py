"""PNG plots of a finished run (matplotlib, Agg backend), in <run dir>/plots/.

loss.png       training loss and validation log loss per epoch, overall and per class,
               the exported (best) epoch marked
confusion.png  the exported epoch's validation confusion matrix
session.png    the validation session with the most label changes, whole: the exported
               model's probabilities over time above its true labels (session_plot)
"""
from __future__ import annotations

import posixpath

import keras
import numpy as np
import tensorflow as tf
from matplotlib.ticker import MaxNLocator

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.prediction.predict import segment_window_logits
from trainer.prediction.session_plot import (SessionTrace, label_changes, most_changing_session,
                                             segment_trace, session_figure, session_trace)
from trainer.prediction.window_rows import DEFAULT_STRIDE
from trainer.records import spec
from trainer.runs import run_dir
from trainer.shared.figures import plt, save_figure
from trainer.shared.metrics import softmax

PLOTS = ("loss.png", "confusion.png", "session.png")
SessionKey = tuple[int, int, bytes]  # crew, seat, experiment


def loss_figure(history: list[dict], exported_epoch: int) -> plt.Figure:
    """Validation is balanced (as many windows of each class), so its log loss is the
    balanced one: one validation line."""
    epochs = [e["epoch"] for e in history]
    fig, (overall, per_class) = plt.subplots(1, 2, figsize=(13, 4.5))
    overall.plot(epochs, [e["train_loss"] for e in history], "o-", label="train (weighted)")
    overall.plot(epochs, [e["valid"]["balanced_log_loss"] for e in history], "o-",
                 label="valid (balanced)")
    overall.axhline(np.log(spec.NUM_CLASSES), color="grey", lw=0.8, label="ln 4 (chance)")
    for name in spec.CLASSES:
        values = [e["valid"]["per_class"][name]["log_loss"] for e in history]
        if any(v is not None for v in values):
            per_class.plot(epochs, [np.nan if v is None else v for v in values], "o-", label=name)
    overall.set(title="log loss", xlabel="epoch", ylabel="log loss (nats)")
    per_class.set(title="validation log loss per class", xlabel="epoch",
                  ylabel="validation log loss (nats)")
    for ax in (overall, per_class):
        ax.axvline(exported_epoch, color="black", ls=":", lw=1,
                   label=f"exported (epoch {exported_epoch})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)
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


def _session_name(key: SessionKey) -> str:
    crew, seat, experiment = key
    return f"crew {crew} seat {seat} {experiment.decode()}"


def validation_label_changes(paths: list[str]) -> dict[SessionKey, int]:
    """Label changes of every validation session (its rows in block order).  Reads the
    records without the model, so that only the chosen session is predicted."""
    blocks: dict[SessionKey, list] = {}
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
        segment = spec.decode_segment(record.numpy())
        key = (segment.crew, segment.seat, segment.experiment.encode())
        blocks.setdefault(key, []).append(
            (segment.block, segment.labels[segment.context_rows:]))
    changes = {}
    for key, parts in blocks.items():
        parts.sort(key=lambda part: part[0])
        changes[key] = label_changes(np.concatenate([labels for _, labels in parts]))
    return changes


def validation_session_trace(model: keras.Model, data_dir: str, manifest: dict,
                             config: TrainConfig, temperature: float) -> SessionTrace:
    """The whole validation session with the most label changes, predicted by `model`
    at the run's temperature every DEFAULT_STRIDE rows, as `predict` would."""
    paths = data.shard_paths(data_dir, manifest, "valid")
    key = most_changing_session(validation_label_changes(paths))
    crew, seat, experiment = key
    parts = []
    for values, window_logits, index in segment_window_logits(
            model, paths, config.window, DEFAULT_STRIDE,
            (spec.BLOCK, spec.CONTEXT_ROWS, spec.TIME, spec.LABELS),
            keep=lambda s: ((s[spec.CREW] == crew) & (s[spec.SEAT] == seat)
                            & (s[spec.EXPERIMENT] == experiment))):
        own = slice(int(values[spec.CONTEXT_ROWS]), None)
        parts.append((segment_trace(int(values[spec.BLOCK]), values[spec.TIME][own], index,
                                    values[spec.LABELS][own]),
                      softmax(window_logits.astype(np.float64) / temperature)))
    return session_trace(f"validation session {_session_name(key)}",
                         f"temperature {temperature:.2f}, uniform prior", parts)


def write_run_plots(paths: run_dir.RunPaths, history: list[dict], exported: dict,
                    model: keras.Model, data_dir: str, manifest: dict,
                    config: TrainConfig) -> list[str]:
    """Writes the PLOTS into <run dir>/plots/; returns their paths.  `exported` is the
    epoch record (of `history`) whose weights `model` holds, with its temperature."""
    plot_dir = paths.file("plots")
    tf.io.gfile.makedirs(plot_dir)
    trace = validation_session_trace(model, data_dir, manifest, config,
                                     exported.get("temperature", 1.0))
    figures = [("loss.png", loss_figure(history, exported["epoch"])),
               ("confusion.png", confusion_figure(exported["valid"]["confusion"],
                                                  exported["epoch"])),
               ("session.png", session_figure(trace))]
    written = []
    for name, fig in figures:
        save_figure(fig, posixpath.join(plot_dir, name))
        written.append(posixpath.join(plot_dir, name))
    return written
