"""The run's plots and predict's session plot, inspected as matplotlib figures: what a
person reading them needs (whole sessions with their state changes, labelled axes,
legends that hide nothing)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.prediction.predict import load_run_model, predict
from trainer.prediction.session_plot import ROW_SECONDS
from trainer.records import spec
from trainer.runs import plots, run_dir
from trainer.shared.figures import plt


def _sessions(data_dir: str, split: str) -> dict[tuple, dict[str, np.ndarray]]:
    """Own rows of every session of a split, in time order: time, labels, ids."""
    parts: dict[tuple, list] = {}
    paths = data.shard_paths(data_dir, data.read_manifest(data_dir), split)
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
        s = spec.decode_segment(record.numpy())
        own = slice(s.context_rows, None)
        parts.setdefault((s.crew, s.seat, s.experiment), []).append(
            (s.block, s.time[own], None if s.labels is None else s.labels[own],
             None if s.ids is None else s.ids[own]))
    sessions = {}
    for key, blocks in parts.items():
        blocks.sort(key=lambda b: b[0])
        sessions[key] = {name: np.concatenate([b[i] for b in blocks]) if blocks[0][i] is not None
                         else None for i, name in ((1, "time"), (2, "labels"), (3, "ids"))}
    return sessions


def _changes(labels: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(labels)))


def _outside(fig: plt.Figure, legend, ax) -> bool:
    """True when the drawn legend does not cover any of the axes' area."""
    fig.canvas.draw()
    return not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_session_plot_shows_the_whole_validation_session_with_the_most_label_changes(
        trainer_trained_job, trainer_data_dir):
    sessions = _sessions(trainer_data_dir, "valid")
    changes = {key: _changes(s["labels"]) for key, s in sessions.items()}
    crew, seat, experiment = max(changes, key=changes.get)
    assert sorted(changes.values())[-2] < changes[(crew, seat, experiment)]  # a single most
    assert min(changes) != (crew, seat, experiment)  # and it is not the first
    shown = sessions[(crew, seat, experiment)]

    paths = run_dir.find_run(trainer_trained_job)
    temperature = run_dir.read_json(paths.file("run.json"))["temperature"]
    trace = plots.validation_session_trace(
        load_run_model(paths), trainer_data_dir, data.read_manifest(trainer_data_dir),
        TrainConfig.load(paths.file("config.json")), temperature)
    fig = plots.session_figure(trace)
    ax_probs, ax_band = fig.axes

    assert f"crew {crew} seat {seat} {experiment}" in ax_probs.get_title()
    assert f"{changes[(crew, seat, experiment)]} label changes" in ax_probs.get_title()
    start, end = shown["time"].min(), shown["time"].max() + ROW_SECONDS
    assert ax_probs.get_xlim() == pytest.approx((start, end))
    assert len(ax_probs.lines) == spec.NUM_CLASSES
    for line in ax_probs.lines:  # each class's probability spans the whole session
        x = line.get_xdata()
        assert x.min() == pytest.approx(start) and x.max() == pytest.approx(end)
        assert 0 <= np.nanmin(line.get_ydata()) <= np.nanmax(line.get_ydata()) <= 1
    # The band: one colour per true class, covering every row of the session.
    band = {col.get_label(): col for col in ax_band.collections}
    assert sorted(band) == [f"true {spec.CLASSES[c]}" for c in np.unique(shown["labels"])]
    assert len(band) > 1
    widths = sum(np.ptp(path.vertices[:, 0]) for col in band.values() for path in col.get_paths())
    assert widths == pytest.approx(shown["time"].size * ROW_SECONDS)
    legend = ax_probs.get_legend()
    assert [t.get_text()[0] for t in legend.get_texts()] == list(spec.CLASSES)
    assert _outside(fig, legend, ax_probs)
    plt.close(fig)


def test_loss_and_confusion_plots_name_their_axes_epoch_and_hide_nothing(trainer_trained_job):
    metrics = run_dir.read_json(run_dir.find_run(trainer_trained_job).file("metrics.json"))
    best = metrics["best"]
    fig = plots.loss_figure(metrics["epochs"], best["epoch"])
    for ax in fig.axes:
        assert "log loss" in ax.get_ylabel() and ax.get_xlabel() == "epoch"
        assert all(float(t).is_integer() for t in ax.get_xticks())
        assert _outside(fig, ax.get_legend(), ax)
    plt.close(fig)
    fig = plots.confusion_figure(best["valid"]["confusion"], best["epoch"])
    assert f"epoch {best['epoch']}" in fig.axes[0].get_title()
    plt.close(fig)


def test_predict_plots_the_test_session_with_the_most_label_changes(
        trainer_trained_job, trainer_data_dir, tmp_path):
    sessions = _sessions(trainer_data_dir, "test")
    truth = pd.read_csv(os.path.join(trainer_data_dir, "test_labels.csv")).set_index("id")
    label_index = {c: i for i, c in enumerate(spec.CLASSES)}
    changes = {key: _changes(truth.loc[s["ids"], "event"].map(label_index).to_numpy())
               for key, s in sessions.items()}
    best = max(changes, key=changes.get)
    assert sorted(changes.values())[-2] < changes[best]

    out = str(tmp_path / "submission.csv")
    summary = predict(trainer_trained_job, trainer_data_dir, out, stride=16, prior="none",
                      labels=os.path.join(trainer_data_dir, "test_labels.csv"))
    shown = summary["session_plot"]
    assert shown["path"] == str(tmp_path / "submission_session.png")
    with open(shown["path"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    time = sessions[best]["time"]
    assert shown["session"] == "test session crew {} seat {} {}".format(*best)
    assert shown["span_seconds"] == pytest.approx([time.min(), time.max() + ROW_SECONDS])
    assert shown["label_changes"] == changes[best] > 1
    assert len(shown["labels_shown"]) > 1

    # Labels of the other session only: the band (and the choice) follow them.
    other = next(k for k in sessions if k != best)
    partial = tmp_path / "partial_labels.csv"
    truth.loc[sessions[other]["ids"]].reset_index().to_csv(partial, index=False)
    shown = predict(trainer_trained_job, trainer_data_dir, out, stride=16, prior="none",
                    labels=str(partial), plot=str(tmp_path / "other.png"),
                    overwrite=True)["session_plot"]
    assert shown["session"] == "test session crew {} seat {} {}".format(*other)
    assert os.path.getsize(tmp_path / "other.png") > 0

    # No labels: predictions only, of the first session.
    shown = predict(trainer_trained_job, trainer_data_dir, out, stride=16,
                    prior="none", overwrite=True)["session_plot"]
    assert shown["session"] == "test session crew {} seat {} {}".format(*min(sessions))
    assert shown["labels_shown"] == [] and shown["label_changes"] == 0
