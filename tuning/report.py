"""Review of a search: a table of trials, plots, TensorBoard HParams logs, the best config.

Reads only the tuner directory (keras-tuner's trial.json files and the
pilotstate_trial.json that LSTMHyperModel.fit leaves beside each), so a search
can be reviewed where its data is not.  Writes into TUNER_DIR/report/:

    trials.csv, trials.md        one row per trial, best first (columns empty for every
                                 trial left out)
    objective_vs_<hp>.png        the objective against each hyperparameter, points labelled
                                 with trial ids (categories on the x axis for front_end
                                 and temperature_scaling)
    per_class_best.png           per-class validation log loss by epoch, best trials
    hparams/                     TensorBoard HParams logs (tensorboard --logdir TUNER_DIR/report/hparams)
    best_config.json             the best trial's TrainConfig: `python -m trainer train --config`

best_config.json is what the search chose, not its budget: the best trial's config
with `epochs` and `patience` (SEARCH_BUDGET: what bounds each trial, e.g. the demo's
`--epochs 10 --patience 3`) set back to the trainer's defaults, so that `trainer
train --config best_config.json` trains the chosen model to the trainer's own
stopping rule.  The trial's own best epoch is in the report's table.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import posixpath
from typing import Any, Optional

import keras_tuner as kt
import numpy as np
import tensorflow as tf
from matplotlib.ticker import (FuncFormatter, LogLocator, MaxNLocator, NullFormatter,
                               NullLocator)
from tensorboard.plugins.hparams import api as hparams_api

from trainer.config import TrainConfig
from trainer.records.spec import CLASSES
from trainer.runs import run_dir
from trainer.shared.errors import UserError
from trainer.shared.figures import plt, save_figure
from tuning.hypermodel import TRIAL_RECORD
from tuning.search import OBJECTIVE
from tuning.settings import PROJECT, REPORT_DIR

HYPERPARAMETERS = ("lstm_layers", "units_0", "units_1", "units_2", "dropout",
                   "learning_rate", "batch_size", "front_end", "window", "frame",
                   "hop_fraction", "augment", "temperature_scaling")
LOG2_AXES = ("batch_size", "units_0", "units_1", "units_2", "window", "frame")
HPARAM_METRICS = (OBJECTIVE.name, "val_balanced_log_loss", "val_calibrated_balanced_log_loss",
                  "val_log_loss", "val_balanced_accuracy")


@dataclasses.dataclass(frozen=True)
class TrialSummary:
    trial_id: str
    status: str
    hyperparameters: dict[str, Any]   # the active ones (keras-tuner's internal tuner/* removed)
    score: Optional[float]            # the objective's best value
    best_epoch: Optional[int]         # 0-based, as Keras counts (from initial_epoch on)
    metrics: dict[str, float]         # the logs of the best epoch
    epochs: list[dict]                # this trial's epoch logs (pilotstate_trial.json)
    seconds: Optional[float]
    config: Optional[dict]
    initial_epoch: int = 0            # > 0: Hyperband continued `parent` from its best epoch
    parent: Optional[str] = None


def load_trials(tuner_dir: str) -> list[TrialSummary]:
    """Every trial of the search in `tuner_dir`, best first (failed ones last)."""
    pattern = posixpath.join(tuner_dir, PROJECT, "trial_*", "trial.json")
    trials = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        trial = kt.engine.trial.Trial.load(path)
        record_path = posixpath.join(posixpath.dirname(path), TRIAL_RECORD)
        record = run_dir.read_json(record_path) if tf.io.gfile.exists(record_path) else {}
        # The best epoch's logs (not each metric's own best), else what keras-tuner kept.
        # The record's epochs count from initial_epoch, keras-tuner's best_step from 0.
        epochs = record.get("epochs", [])
        best = (min(epochs, key=lambda e: e[OBJECTIVE.name])
                if epochs and trial.score is not None else None)
        kept = {name: trial.metrics.get_best_value(name) for name in trial.metrics.metrics}
        values = trial.hyperparameters.values
        trials.append(TrialSummary(
            trial_id=trial.trial_id, status=trial.status,
            hyperparameters={k: v for k, v in values.items() if not k.startswith("tuner/")},
            score=trial.score, best_epoch=best["epoch"] if best else None,
            metrics=best or {k: v for k, v in kept.items() if v is not None},
            epochs=epochs, seconds=record.get("seconds"), config=record.get("config"),
            initial_epoch=record.get("initial_epoch", 0), parent=values.get("tuner/trial_id")))
    if not trials:
        raise UserError(f"no trials under {posixpath.join(tuner_dir, PROJECT)}: --tuner-dir must "
                        "be the --tuner-dir of a `python -m tuning search` that ran a trial")
    return sorted(trials, key=lambda t: (t.score is None, t.score or 0.0, t.trial_id))


def _searched(trials: list[TrialSummary]) -> list[str]:
    """The HYPERPARAMETERS that some trial has."""
    return [n for n in HYPERPARAMETERS if any(n in t.hyperparameters for t in trials)]


def _rows(trials: list[TrialSummary]) -> list[dict[str, Any]]:
    """Table rows: hyperparameters, then the best epoch's validation figures (log losses
    uncalibrated but for the objective and `calibrated`)."""
    rows = []
    names = _searched(trials)
    for t in trials:
        row: dict[str, Any] = {"trial": t.trial_id, "status": t.status}
        row.update({name: _fmt_hp(t.hyperparameters.get(name, "")) for name in names})
        row["objective"] = _fmt(t.score)
        row["balanced"] = _fmt(t.metrics.get("val_balanced_log_loss"))
        row["calibrated"] = _fmt(t.metrics.get("val_calibrated_balanced_log_loss"))
        row["temperature"] = _fmt(t.metrics.get("val_temperature"), 3)
        row["log_loss"] = _fmt(t.metrics.get("val_log_loss"))
        for name in CLASSES:
            row[f"log_loss_{name}"] = _fmt(t.metrics.get(f"val_log_loss_{name}"))
        row["best_epoch"] = "" if t.best_epoch is None else t.best_epoch + 1
        row["continues"] = t.parent or ""
        row["epochs_run"] = len(t.epochs)
        row["seconds"] = _fmt(t.seconds, 1)
        rows.append(row)
    # Columns no trial fills (e.g. `continues` outside Hyperband) are left out.
    empty = [k for k in rows[0] if all(r[k] == "" for r in rows)]
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _fmt_hp(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trials_markdown(trials: list[TrialSummary]) -> str:
    rows = _rows(trials)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[k]) for k in header) + " |" for r in rows]
    return "\n".join(lines)


def _write_csv(path: str, trials: list[TrialSummary]) -> None:
    rows = _rows(trials)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(buffer.getvalue())


def _plain_number(value: float, _position: int = 0) -> str:
    """0.0003, not 3e-04 or 3x10^-4 (nor 0.00030000000000000003)."""
    return np.format_float_positional(float(f"{value:.3g}"), trim="-")


def objective_figure(trials: list[TrialSummary], name: str) -> Optional[plt.Figure]:
    """The objective of every scored trial against hyperparameter `name`, each point
    labelled with its trial id (None if no trial has `name`).  Strings and booleans go
    on a categorical axis, whole numbers get ticks at the values tried (log2 spacing
    for sizes), the learning rate a log axis with plain-number labels."""
    points = [(t.hyperparameters[name], t.score, t.trial_id) for t in trials
              if t.score is not None and name in t.hyperparameters]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    xs, ys, ids = zip(*points)
    if any(isinstance(x, (str, bool)) for x in xs):
        categories = sorted({str(x) for x in xs})
        ax.set_xticks(range(len(categories)), categories)
        ax.set_xlim(-0.5, len(categories) - 0.5)
        xs = [categories.index(str(x)) for x in xs]
    elif name == "learning_rate":
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    elif all(float(x).is_integer() for x in xs):  # sizes, layers, augment 0/1/2
        if name in LOG2_AXES:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_minor_locator(NullLocator())
        values = sorted(set(xs))
        ax.set_xticks(values, [str(int(v)) for v in values])
        low, high = values[0], values[-1]
        ax.set_xlim(*((low / 1.5, high * 1.5) if name in LOG2_AXES else (low - 0.5, high + 0.5)))
    ax.scatter(xs, ys)
    for x, y, trial_id in zip(xs, ys, ids):
        ax.annotate(trial_id, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.axhline(math.log(len(CLASSES)), color="grey", linestyle=":", label="chance (ln 4)")
    ax.set_xlabel(name)
    ax.set_ylabel(f"{OBJECTIVE.name}\n(best epoch)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
              title="numbers: trial ids")
    return fig


def plot_objective_vs_hyperparameters(trials: list[TrialSummary], out_dir: str) -> list[str]:
    """objective_vs_<hp>.png for every hyperparameter some scored trial has."""
    written = []
    for name in HYPERPARAMETERS:
        fig = objective_figure(trials, name)
        if fig is not None:
            path = posixpath.join(out_dir, f"objective_vs_{name}.png")
            save_figure(fig, path)
            written.append(path)
    return written


def per_class_figure(trials: list[TrialSummary], top: int) -> Optional[plt.Figure]:
    """Per-class validation log loss by epoch of the `top` best trials (None if none)."""
    best = [t for t in trials if t.score is not None and t.epochs][:top]
    if not best:
        return None
    fig, axes = plt.subplots(1, len(CLASSES), figsize=(4 * len(CLASSES), 3.5), sharey=True)
    for ax, name in zip(axes, CLASSES):
        for t in best:
            points = [(e["epoch"] + 1, e[f"val_log_loss_{name}"]) for e in t.epochs
                      if f"val_log_loss_{name}" in e]
            if points:
                ax.plot(*zip(*points), marker="o", label=f"trial {t.trial_id}")
        ax.set_title(f"class {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("val log loss")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.04, 1), borderaxespad=0)
    return fig


def plot_per_class_of_best(trials: list[TrialSummary], out_dir: str, top: int) -> Optional[str]:
    fig = per_class_figure(trials, top)
    if fig is None:
        return None
    path = posixpath.join(out_dir, "per_class_best.png")
    save_figure(fig, path)
    return path


def write_hparams_logs(trials: list[TrialSummary], log_dir: str) -> None:
    """One HParams session per scored trial, with its best-epoch metrics (TensorBoard's
    HParams take strings and booleans as they are)."""
    scored = [t for t in trials if t.score is not None]
    names = _searched(scored)
    with tf.summary.create_file_writer(log_dir).as_default():
        hparams_api.hparams_config(
            hparams=[hparams_api.HParam(n) for n in names],
            metrics=[hparams_api.Metric(m, display_name=m.removeprefix("val_"))
                     for m in HPARAM_METRICS])
    for t in scored:
        with tf.summary.create_file_writer(posixpath.join(log_dir, t.trial_id)).as_default():
            hparams_api.hparams({n: t.hyperparameters[n] for n in names
                                 if n in t.hyperparameters}, trial_id=t.trial_id)
            for m in HPARAM_METRICS:
                if m in t.metrics:
                    tf.summary.scalar(m, t.metrics[m], step=0)


# The options that bound a trial rather than define the model it trains.
SEARCH_BUDGET = ("epochs", "patience")


def best_config(trials: list[TrialSummary]) -> TrainConfig:
    """The best trial's config, with the search's budget (SEARCH_BUDGET) set back to
    the trainer's defaults."""
    best = next((t for t in trials if t.best_epoch is not None and t.config), None)
    if best is None:
        raise ValueError("no trial finished with a score: nothing to export")
    defaults = TrainConfig().to_dict()
    return TrainConfig.from_dict({**best.config, **{k: defaults[k] for k in SEARCH_BUDGET}},
                                 source=f"trial {best.trial_id}")


def write_report(tuner_dir: str, top: int = 3) -> dict[str, Any]:
    """Writes TUNER_DIR/report/ and returns what it holds (the table included)."""
    trials = load_trials(tuner_dir)
    out_dir = posixpath.join(tuner_dir, REPORT_DIR)
    tf.io.gfile.makedirs(out_dir)
    table = trials_markdown(trials)
    with tf.io.gfile.GFile(posixpath.join(out_dir, "trials.md"), "w") as f:
        f.write(table + "\n")
    _write_csv(posixpath.join(out_dir, "trials.csv"), trials)
    plots = plot_objective_vs_hyperparameters(trials, out_dir)
    per_class = plot_per_class_of_best(trials, out_dir, top)
    write_hparams_logs(trials, posixpath.join(out_dir, "hparams"))
    summary: dict[str, Any] = {
        "table": table, "trials": len(trials),
        "statuses": {s: sum(t.status == s for t in trials) for s in sorted({t.status for t in trials})},
        "plots": plots + ([per_class] if per_class else []),
        "hparams": posixpath.join(out_dir, "hparams"),
        "objective": OBJECTIVE.name,
    }
    try:
        config = best_config(trials)
    except ValueError as err:
        summary["best_config"] = None
        summary["best_config_error"] = str(err)
    else:
        path = posixpath.join(out_dir, "best_config.json")
        config.save(path)
        summary.update(best_config=path, best_trial=trials[0].trial_id, best_score=trials[0].score)
    return summary
