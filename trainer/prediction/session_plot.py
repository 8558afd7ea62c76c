"""One whole session's predicted probabilities over time, with its true labels as a band.

`trainer train` draws the validation session with the most label changes
(plots/session.png), `trainer predict` a test session.  A trace keeps one step
per predicted window and one run per stretch of equal labels, not a point per
row, so that holding a part of every test segment until the session to draw is
known costs a few numbers per window.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from matplotlib.patches import Patch

from trainer.records.spec import CLASSES, SAMPLE_RATE_HZ
from trainer.shared.figures import plt

ROW_SECONDS = 1.0 / SAMPLE_RATE_HZ
GAP_SECONDS = 1.5 * ROW_SECONDS  # rows farther apart than this are not contiguous
UNKNOWN = -1                     # label of a row whose label is not known
STATE_NAMES = {"A": "baseline", "B": "startle/surprise", "C": "channelized attention",
               "D": "diverted attention"}
COLOURS = {c: f"C{i}" for i, c in enumerate(CLASSES)}


def label_changes(labels: np.ndarray) -> int:
    """Changes between known labels of consecutive rows (UNKNOWN rows skipped)."""
    known = labels[labels != UNKNOWN]
    return int(np.count_nonzero(np.diff(known)))


def _runs(time: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) rows of the stretches of equal values; a gap in time
    also ends a stretch."""
    cut = np.flatnonzero((np.diff(values) != 0) | (np.diff(time) > GAP_SECONDS)) + 1
    return np.r_[0, cut], np.r_[cut, values.size]


@dataclasses.dataclass(frozen=True)
class SegmentTrace:
    """A segment's own rows, reduced to steps (rows predicted by one window) and label
    runs; times in seconds, ends exclusive (last row + one sample)."""
    block: int
    step_start: np.ndarray
    step_end: np.ndarray
    step_window: np.ndarray   # the window whose prediction each step shows
    label_start: np.ndarray
    label_end: np.ndarray
    label_class: np.ndarray
    label_changes: int


def segment_trace(block: int, time: np.ndarray, window_index: np.ndarray,
                  labels: Optional[np.ndarray] = None) -> SegmentTrace:
    """The trace of a segment's own rows: their time, the window predicting each
    (window_rows.row_windows) and their labels (UNKNOWN where not known; None: none known)."""
    starts, ends = _runs(time, window_index)
    if labels is None:
        labels = np.full(time.size, UNKNOWN)
    labels = labels.astype(np.int64)
    label_starts, label_ends = _runs(time, labels)
    known = labels[label_starts] != UNKNOWN
    label_starts, label_ends = label_starts[known], label_ends[known]
    return SegmentTrace(
        block=block, step_start=time[starts], step_end=time[ends - 1] + ROW_SECONDS,
        step_window=window_index[starts], label_start=time[label_starts],
        label_end=time[label_ends - 1] + ROW_SECONDS, label_class=labels[label_starts],
        label_changes=label_changes(labels))


@dataclasses.dataclass(frozen=True)
class SessionTrace:
    """What session_figure draws: probability steps and label runs of one session."""
    name: str                 # e.g. "validation session crew 3 seat 0 SS"
    probability_note: str     # what the probabilities are (temperature, prior)
    step_start: np.ndarray    # [k] seconds
    step_end: np.ndarray      # [k]
    step_probs: np.ndarray    # [k, classes]
    label_start: np.ndarray   # [r] seconds
    label_end: np.ndarray     # [r]
    label_class: np.ndarray   # [r] index into CLASSES
    label_changes: int

    @property
    def span(self) -> tuple[float, float]:
        """First and last (exclusive) time of the session's rows."""
        return float(self.step_start.min()), float(self.step_end.max())

    def describe(self) -> dict:
        """A JSON-able summary: the session, its time span, the labels shown."""
        return {"session": self.name, "span_seconds": list(self.span),
                "label_changes": self.label_changes,
                "labels_shown": [CLASSES[c] for c in np.unique(self.label_class)]}


def session_trace(name: str, probability_note: str,
                  parts: list[tuple[SegmentTrace, np.ndarray]]) -> SessionTrace:
    """Joins a session's segments (each with its windows' probabilities), in block order."""
    parts = sorted(parts, key=lambda p: p[0].block)
    joined = {field: np.concatenate([getattr(p, field) for p, _ in parts])
              for field in ("step_start", "step_end", "label_start", "label_end", "label_class")}
    return SessionTrace(
        name=name, probability_note=probability_note,
        step_probs=np.concatenate([probs[p.step_window] for p, probs in parts]),
        label_changes=sum(p.label_changes for p, _ in parts), **joined)


def most_changing_session(changes: dict[tuple, int]) -> tuple:
    """The session key with the most label changes; ties (and no labels) go to the
    smallest key, so the choice is the same in every run."""
    return min(changes, key=lambda key: (-changes[key], key))


def _polyline(start: np.ndarray, end: np.ndarray,
              values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of flat steps [start, end) at `values`, joined where contiguous and broken
    (NaN) at gaps in time."""
    gap = np.r_[start[1:] - end[:-1] > GAP_SECONDS, False]
    x = np.column_stack([start, end, np.where(gap, end, np.nan)]).ravel()
    y = np.column_stack([values, values, np.where(gap, np.nan, values)]).ravel()
    keep = ~np.isnan(x)
    return x[keep], y[keep]


def session_figure(trace: SessionTrace) -> plt.Figure:
    """Probabilities over the whole session (top), true labels as a coloured band
    (bottom, only where known), one legend for both."""
    fig, (ax_probs, ax_band) = plt.subplots(
        2, 1, figsize=(14, 5), sharex=True, gridspec_kw={"height_ratios": [5, 1]})
    for c, cls in enumerate(CLASSES):
        ax_probs.plot(*_polyline(trace.step_start, trace.step_end, trace.step_probs[:, c]),
                      lw=0.9, color=COLOURS[cls])
    for c, cls in enumerate(CLASSES):
        of_class = trace.label_class == c
        if of_class.any():
            starts = trace.label_start[of_class]
            ax_band.broken_barh(list(zip(starts, trace.label_end[of_class] - starts)), (0, 1),
                                facecolors=COLOURS[cls], label=f"true {cls}")
    title = f"{trace.name}: predicted probabilities ({trace.probability_note})"
    if trace.label_class.size:
        title += f", {trace.label_changes} label changes"
    ax_probs.set(title=title, ylabel="probability", ylim=(0, 1), xlim=trace.span)
    ax_band.set(yticks=[], xlabel="time in session (s)",
                ylabel="true" if trace.label_class.size else "")
    if not trace.label_class.size:
        ax_band.text(0.5, 0.5, "true labels not known", transform=ax_band.transAxes,
                     ha="center", va="center", color="grey")
    handles = [Patch(color=COLOURS[c], label=f"{c} {STATE_NAMES[c]}") for c in CLASSES]
    ax_probs.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1),
                    title="line: predicted\nband: true", borderaxespad=0)
    return fig
