"""Prediction: a probability row per test id, from windows at a stride.

Each segment gets windows every `stride` rows; each row takes the prediction of
the latest window that ends at or before it (rows before the first full window
take the first window's), which is what a causal, streaming model would know at
that row.  With a look-ahead of L rows a row takes the latest window ending at or
before its row + L instead (offline scoring of whole recordings: a state shows in
the signals only after it begins); near a segment's end, where no such window is
in the segment, it takes the segment's last.  Context rows (the first
`context_rows` of a record) belong to the previous record and are not written
again, so every id appears once; the ids written are checked against the
manifest's splits.test.ids.

Test rows that beam_preprocess quarantined are written too (quarantined_rows.py),
and the outputs are checked before the work and written whole (output_files.py).  A
probability that is not finite fails the command (nothing written).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import posixpath
import tempfile
import time
import uuid
from typing import Callable, Iterator, Optional

import keras
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.model.network import logits_function
from trainer.prediction.output_files import SUBMISSION_HEADER, check_outputs, write_atomically
from trainer.prediction.prior import (DEFAULT_BALANCE, DEFAULT_PRIOR, PriorEstimate, balance_prior,
                                      correct_prior, estimate_prior_bbse, estimate_prior_em,
                                      parse_prior)
from trainer.prediction.quarantined_rows import (NearestRows, quarantine_path,
                                                 read_quarantined_test_rows, report_quarantined)
from trainer.prediction.score import read_labels
from trainer.prediction.session_plot import (UNKNOWN, most_changing_session, segment_trace,
                                             session_figure, session_trace)
from trainer.prediction.window_rows import (DEFAULT_SMOOTH_SECONDS, DEFAULT_STRIDE, row_windows,
                                            smoothing_windows, trailing_mean)
from trainer.records import spec
from trainer.runs import run_dir
from trainer.shared.errors import UserError
from trainer.shared.figures import save_figure
from trainer.shared.progress import Progress
from trainer.shared.distribution import describe_devices
from trainer.shared.metrics import softmax

log = logging.getLogger(__name__)


class Stopwatch:
    """Wall time split into named parts: each `lap(part)` adds the time since the last
    lap (or since the stopwatch started) to `part`, so the parts add up to the whole."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[part] = self.seconds.get(part, 0.0) + now - self._last
        self._last = now


def load_run_model(paths: run_dir.RunPaths) -> keras.Model:
    """The run's exported .keras model (copied locally first, so gs:// works)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "model.keras")
        tf.io.gfile.copy(paths.keras_model, local)
        return keras.models.load_model(local, compile=False)


def segment_window_logits(model: keras.Model, paths: list[str], window: int, stride: int,
                          keys: tuple[str, ...], cycle_length: int = 4,
                          keep: Optional[Callable[[dict], tf.Tensor]] = None,
                          lookahead: int = 0, clock: Optional[Stopwatch] = None
                          ) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """Per segment (those `keep` selects, see data.strided_segments): its `keys` as
    numpy, the logits of its strided windows, and for each of its own rows the index
    of the window that predicts it (row_windows, `lookahead` rows ahead).

    `clock`, if given, gets laps for the caller's work between segments ("rows"),
    reading and cutting windows ("read") and running the model on them ("model")."""
    logits_fn = logits_function(model, window)
    clock = clock or Stopwatch()
    segments = iter(data.strided_segments(paths, window, stride, cycle_length, keys, keep))
    while True:
        clock.lap("rows")
        segment = next(segments, None)
        clock.lap("read")
        if segment is None:
            return
        window_logits = logits_fn(segment["windows"]).numpy()
        clock.lap("model")
        values = {k: segment[k].numpy() for k in keys}
        index = row_windows(segment["ends"].numpy(), int(segment[spec.NUM_ROWS]),
                            int(segment[spec.CONTEXT_ROWS]), lookahead)
        yield values, window_logits, index


class IdLedger:
    """Checks that the ids written are exactly the manifest's test ids, once each."""

    def __init__(self, expected: dict):
        self.expected = expected
        self._seen = np.zeros(expected["max"] - expected["min"] + 1, dtype=bool)
        self.count = 0

    def add(self, ids: np.ndarray) -> None:
        if ids.size == 0:
            return
        if ids.min() < self.expected["min"] or ids.max() > self.expected["max"]:
            raise data.DataError(f"test ids outside the manifest's range "
                             f"[{self.expected['min']}, {self.expected['max']}]")
        offsets = ids - self.expected["min"]
        if self._seen[offsets].any() or np.unique(offsets).size != offsets.size:
            raise data.DataError(f"test id {ids[self._seen[offsets]][:5]} ... written twice")
        self._seen[offsets] = True
        self.count += ids.size

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Whether each id has been added."""
        offsets = np.asarray(ids, dtype=np.int64) - self.expected["min"]
        inside = (offsets >= 0) & (offsets < self._seen.size)
        found = np.zeros(offsets.shape, dtype=bool)
        found[inside] = self._seen[offsets[inside]]
        return found

    def check_complete(self) -> None:
        seen = np.flatnonzero(self._seen) + self.expected["min"]
        got = {"count": int(seen.size), "min": int(seen.min()) if seen.size else None,
               "max": int(seen.max()) if seen.size else None, "sum": int(seen.sum())}
        wanted = {k: self.expected[k] for k in got}
        if got != wanted:
            raise data.DataError(f"the test records hold ids {got}, but the manifest lists "
                                 f"{wanted}: the data directory is damaged")


def predict(run: str, data_dir: str, out: str, stride: int = DEFAULT_STRIDE,
            prior: Optional[str] = DEFAULT_PRIOR, balance: float = DEFAULT_BALANCE,
            lookahead: float = 0.0, smooth: float = DEFAULT_SMOOTH_SECONDS,
            labels: Optional[str] = None,
            plot: Optional[str] = None, overwrite: bool = False) -> dict:
    """Writes `out` (id,A,B,C,D) and the plot of a whole test session; returns a
    summary (rows, the prior aimed at and the prior used, temperature, stride,
    look-ahead, quarantined test rows, the session plotted, and where the time went:
    `seconds` of loading, reading and cutting windows, the model, per-row bookkeeping,
    the prior, writing and plotting, with the model's windows per second).

    `lookahead` (seconds, >= 0) lets a row's prediction use that much signal after it
    (module docstring); 0 is causal.  `smooth` (seconds, >= 0) averages each window's
    probabilities with those of the windows that ended in the seconds before it, within
    its segment (window_rows.trailing_mean); 0 is off.

    The run's temperature (fitted on validation) is applied first, then the prior
    correction, to the target prior with the share `balance` of the uniform mixed in
    (prior.balance_prior).  An estimated prior (`bbse`, `em`) needs all test
    predictions before any row is written, so the windows' probabilities are kept in
    memory (4 floats per window, not per row).  `plot` (default: beside `out`,
    `<name>_session.png`) shows the test session with the most label changes in
    `labels` (a CSV id,event; its band only where an id is labelled), or without
    labels the first session.

    `overwrite`: whether an existing `out` or `plot` may be replaced (only one that
    predict wrote: a submission, a PNG), as with the command line's --overwrite.
    """
    clock = Stopwatch()
    if lookahead < 0:
        raise UserError(f"--lookahead {lookahead:g}: give 0 (causal) or more seconds")
    if not smooth >= 0:
        raise UserError(f"--smooth {smooth:g}: give 0 (off) or more seconds")
    if not 0.0 <= balance <= 1.0:
        raise UserError(f"--balance {balance:g}: give a share from 0 to 1")
    lookahead_rows = round(lookahead * spec.SAMPLE_RATE_HZ)
    smooth_windows = smoothing_windows(smooth, stride, spec.SAMPLE_RATE_HZ)
    paths = run_dir.find_run(run)
    config = TrainConfig.load(paths.file("config.json"))
    run_info = run_dir.read_json(paths.file("run.json"))
    training_prior = np.array(run_info["training_prior"])
    temperature = float(run_info.get("temperature", 1.0))
    manifest = data.read_manifest(data_dir)
    data.resolve_window(config, manifest)  # the data must offer the model's window
    # `train`: the shares of the rows the model trained on (a test-only data directory,
    # preprocessed with --stats, has none of its own).
    target = parse_prior(prior, run_info.get("train_rows_per_class")
                         or manifest["splits"].get("train", {}).get("rows_per_class"))
    shards = data.shard_paths(data_dir, manifest, "test")  # DataError if there is no test split
    quarantine_file = quarantine_path(data_dir, manifest)
    plot_is_default = not plot
    plot = plot or posixpath.splitext(out)[0] + "_session.png"
    inputs = {posixpath.join(data_dir, spec.MANIFEST_NAME): "the data's manifest",
              **{shard: "a test shard of --data" for shard in shards},
              paths.file("config.json"): "the run's config.json",
              paths.file("run.json"): "the run's run.json",
              paths.keras_model: "the run's model"}
    if quarantine_file:
        inputs[quarantine_file] = "the data's quarantine file"
    if labels:
        inputs[labels] = "the --labels file"
    check_outputs({"--out": out, "--plot": plot}, inputs, overwrite, plot_is_default)
    ledger = IdLedger(manifest["splits"]["test"]["ids"])
    quarantined = read_quarantined_test_rows(quarantine_file, manifest, data_dir)
    nearest = NearestRows(quarantined)
    label_of_id = (_labels_by_id(labels, ledger.expected, quarantined.ids) if labels
                   else None)
    model = load_run_model(paths)
    log.info("predicting on %s", describe_devices(tf.distribute.get_strategy()))
    # About one window per `stride` rows (a segment's first window may start later).
    progress = Progress("predicting", -(-ledger.expected["count"] // stride))
    segments, traces = [], []
    clock.lap("load")
    for values, window_logits, index in segment_window_logits(
            model, shards, config.window, stride,
            (spec.IDS, spec.CONTEXT_ROWS, spec.CREW, spec.SEAT, spec.EXPERIMENT, spec.BLOCK,
             spec.TIME), lookahead=lookahead_rows, clock=clock):
        own = slice(int(values[spec.CONTEXT_ROWS]), None)
        ids = values[spec.IDS][own]
        ledger.add(ids)
        probs = trailing_mean(softmax(window_logits.astype(np.float64) / temperature),
                              smooth_windows)
        _check_finite(probs, f"--run {paths.run_dir}: its model (temperature {temperature:g})",
                      "its weights are damaged (a training that diverged?): retrain it or "
                      "give another run")
        session = (int(values[spec.CREW]), int(values[spec.SEAT]), bytes(values[spec.EXPERIMENT]))
        nearest.offer(len(segments), session, values[spec.TIME][own])
        segments.append((ids, probs, index))
        traces.append(((int(values[spec.CREW]), int(values[spec.SEAT]), values[spec.EXPERIMENT]),
                       segment_trace(int(values[spec.BLOCK]), values[spec.TIME][own], index,
                                     None if label_of_id is None
                                     else label_of_id[ids - ledger.expected["min"]])))
        progress.advance(len(window_logits))
    progress.close()
    clock.lap("rows")
    windows = sum(len(probs) for _, probs, _ in segments)
    ledger.check_complete()
    summary = {"rows": ledger.count, "predicted_rows": ledger.count, "run_id": paths.run_id,
               "temperature": temperature, "stride": stride, "lookahead_rows": lookahead_rows,
               "smooth_windows": smooth_windows, "windows": windows,
               "model_windows_per_second": round(windows / max(clock.seconds["model"], 1e-9))}
    if isinstance(target, PriorEstimate):
        target = _estimate_test_prior(target, segments, training_prior, run_info, summary)
        log.info("test prior estimated (--prior %s): %s", prior,
                 ", ".join(f"{c} {p:.3f}" for c, p in zip(spec.CLASSES, target)))
    if target is not None:
        summary["target_prior"] = target.tolist()
        target = balance_prior(target, balance)
        summary["balance"] = balance
        log.info("prior corrected to %s (--balance %g)", ", ".join(
            f"{c} {p:.3f}" for c, p in zip(spec.CLASSES, target)), balance)
    summary["prior"] = None if target is None else target.tolist()
    # Quarantined ids not written already (as a predicted row, or earlier in quarantine).
    fill = nearest.plan(~ledger.contains(quarantined.ids))
    fill_probs = np.tile(training_prior if target is None else target, (fill.ids.size, 1))
    changes: dict[tuple, int] = {}
    for key, part in traces:
        changes[key] = changes.get(key, 0) + part.label_changes
    shown, shown_parts = most_changing_session(changes), []

    def write_csv(path: str) -> None:
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write((SUBMISSION_HEADER + "\n").encode())
            for number, ((ids, probs, index), (key, part)) in enumerate(zip(segments, traces)):
                if target is not None:
                    probs = correct_prior(probs, training_prior, target)
                    _check_finite(probs, f"--run {paths.run_dir} with --prior {prior}",
                                  "give another --prior, e.g. none")
                row_probs = probs[index]
                f.write(_csv_rows(ids, row_probs))
                filled, rows = fill.of_segment(number)
                fill_probs[filled] = row_probs[rows]
                if key == shown:
                    shown_parts.append((part, probs))
            if fill.ids.size:
                f.write(_csv_rows(fill.ids, fill_probs))

    clock.lap("prior")
    write_atomically(out, "--out", overwrite, write_csv)
    clock.lap("write")
    summary["rows"] = ledger.count + int(fill.ids.size)
    summary["quarantined_test_rows"] = report_quarantined(quarantined, fill, target is None)
    log.info("wrote %d rows to %s", summary["rows"], out)
    crew, seat, experiment = shown
    trace = session_trace(
        f"test session crew {crew} seat {seat} {experiment.decode()}",
        f"temperature {temperature:.2f}, prior " + ("of training" if target is None else
                                                    f"corrected (balance {balance:g})")
        + (f", look-ahead {lookahead:g} s" if lookahead_rows else ""), shown_parts)
    figure = session_figure(trace)
    write_atomically(plot, "--plot", overwrite, lambda path: save_figure(figure, path))
    clock.lap("plot")
    summary["seconds"] = {part: round(value, 2) for part, value in clock.seconds.items()}
    summary["session_plot"] = {"path": plot, **trace.describe()}
    log.info("plotted %s in %s", trace.name, plot)
    return summary


def _check_finite(probs: np.ndarray, source: str, advice: str) -> None:
    """Refuses window probabilities that are NaN or infinite: nothing is written."""
    finite = np.isfinite(probs).all(axis=1)
    if not finite.all():
        raise UserError(f"{source} gives probabilities that are not finite (NaN or inf) for "
                        f"{int((~finite).sum())} of {finite.size} windows, so nothing was "
                        f"written; {advice}")


def _labels_by_id(path: str, ids: dict, quarantined: np.ndarray) -> np.ndarray:
    """The label index of every test id in [ids min, ids max] (UNKNOWN if unlabelled);
    labels of `quarantined` ids (in no record) are ignored without a word."""
    truth = read_labels(path)
    label_of_id = np.full(ids["max"] - ids["min"] + 1, UNKNOWN, dtype=np.int8)
    offsets = truth["id"].to_numpy() - ids["min"]
    inside = (offsets >= 0) & (offsets < label_of_id.size)
    strangers = ~inside & ~np.isin(truth["id"].to_numpy(), quarantined)
    if strangers.any():
        log.warning("%s: %d labelled ids are not test ids of the data (ignored)",
                    path, int(strangers.sum()))
    classes = truth["event"].map({c: i for i, c in enumerate(spec.CLASSES)}).to_numpy()
    label_of_id[offsets[inside]] = classes[inside]
    return label_of_id


def _estimate_test_prior(estimate: PriorEstimate, segments: list, training_prior: np.ndarray,
                         run_info: dict, summary: dict) -> np.ndarray:
    """The test prior estimated from the windows' probabilities (each weighted by the
    rows it predicts, so every row counts once)."""
    probs = np.concatenate([p for _, p, _ in segments])
    weights = np.concatenate([np.bincount(index, minlength=len(p)) for _, p, index in segments])
    if estimate is PriorEstimate.EM:
        target, summary["em_iterations"] = estimate_prior_em(probs, training_prior,
                                                             weights=weights)
        return target
    confusion = run_info.get("valid_soft_confusion")
    if confusion is None:
        raise UserError("--prior bbse needs the validation confusion that `trainer train` "
                         "stores in run.json (valid_soft_confusion): retrain, or use --prior "
                         "train or em")
    return estimate_prior_bbse(np.average(probs, axis=0, weights=weights), np.array(confusion))


def _csv_rows(ids: np.ndarray, probs: np.ndarray) -> bytes:
    """CSV lines id,A,B,C,D; Arrow's writer is ~10x faster than pandas' here, and
    float32 keeps the lines short (shortest round-trip digits)."""
    columns = {"id": ids, **{c: probs[:, i].astype(np.float32) for i, c in enumerate(spec.CLASSES)}}
    buffer = io.BytesIO()
    pa_csv.write_csv(pa.table(columns), buffer, pa_csv.WriteOptions(include_header=False))
    return buffer.getvalue()
