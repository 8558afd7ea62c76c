"""Prediction: a probability row per test id, from windows at a stride.

Each segment gets windows every `stride` rows; each row takes the prediction of
the latest window that ends at or before it (rows before the first full window
take the first window's), which is what a causal, streaming model would know at
that row.  Context rows (the first `context_rows` of a record) belong to the
previous record and are not written again, so every id appears once; the ids
written are checked against the manifest's splits.test.ids.
"""
from __future__ import annotations

import io
import logging
import os
import tempfile
from typing import Iterator, Optional

import keras
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import tensorflow as tf

from trainer import data, run_dir
from trainer import record_spec as spec
from trainer.config import TrainConfig
from trainer.metrics import softmax
from trainer.model import logits_function
from trainer.prior import correct_prior, parse_prior

log = logging.getLogger(__name__)

DEFAULT_STRIDE = 64  # rows (0.25 s) between predicted windows


def load_run_model(paths: run_dir.RunPaths) -> keras.Model:
    """The run's exported .keras model (copied locally first, so gs:// works)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "model.keras")
        tf.io.gfile.copy(paths.keras_model, local)
        return keras.models.load_model(local, compile=False)


def rows_from_windows(window_values: np.ndarray, ends: np.ndarray, num_rows: int,
                      context_rows: int) -> np.ndarray:
    """Values of rows [context_rows, num_rows): those of the latest window ending at or
    before each row, or of the first window for rows before it."""
    rows = np.arange(context_rows, num_rows)
    latest = np.searchsorted(ends, rows, side="right") - 1
    return window_values[np.maximum(latest, 0)]


def segment_row_logits(model: keras.Model, paths: list[str], window: int, stride: int,
                       keys: tuple[str, ...], cycle_length: int = 4
                       ) -> Iterator[tuple[dict, np.ndarray]]:
    """(segment's `keys` as numpy, logits of its own rows) for every segment."""
    logits_fn = logits_function(model, window)
    for segment in data.strided_segments(paths, window, stride, cycle_length, keys):
        window_logits = logits_fn(segment["windows"]).numpy()
        values = {k: segment[k].numpy() for k in keys}
        context = int(segment[spec.CONTEXT_ROWS])
        row_logits = rows_from_windows(window_logits, segment["ends"].numpy(),
                                       int(segment[spec.NUM_ROWS]), context)
        yield values, row_logits


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
            raise ValueError(f"test ids outside the manifest's range "
                             f"[{self.expected['min']}, {self.expected['max']}]")
        offsets = ids - self.expected["min"]
        if self._seen[offsets].any() or np.unique(offsets).size != offsets.size:
            raise ValueError(f"test id {ids[self._seen[offsets]][:5]} ... written twice")
        self._seen[offsets] = True
        self.count += ids.size

    def check_complete(self) -> None:
        seen = np.flatnonzero(self._seen) + self.expected["min"]
        got = {"count": int(seen.size), "min": int(seen.min()) if seen.size else None,
               "max": int(seen.max()) if seen.size else None, "sum": int(seen.sum())}
        wanted = {k: self.expected[k] for k in got}
        if got != wanted:
            raise ValueError(f"the test records hold ids {got}, but the manifest lists {wanted}")


def predict(run: str, data_dir: str, out: str, stride: int = DEFAULT_STRIDE,
            prior: Optional[str] = None) -> dict:
    """Writes `out` (id,A,B,C,D); returns a summary (rows, seconds, prior used)."""
    paths = run_dir.find_run(run)
    config = TrainConfig.load(paths.file("config.json"))
    training_prior = np.array(run_dir.read_json(paths.file("run.json"))["training_prior"])
    manifest = data.read_manifest(data_dir)
    data.resolve_window(config, manifest)  # the data must offer the model's window
    target = parse_prior(prior, manifest)
    shards = data.shard_paths(data_dir, manifest, "test")  # DataError if there is no test split
    ledger = IdLedger(manifest["splits"]["test"]["ids"])
    model = load_run_model(paths)
    with tf.io.gfile.GFile(out, "wb") as f:
        f.write(("id," + ",".join(spec.CLASSES) + "\n").encode())
        for segment, row_logits in segment_row_logits(
                model, shards, config.window, stride, (spec.IDS, spec.CONTEXT_ROWS)):
            ids = segment[spec.IDS][segment[spec.CONTEXT_ROWS]:]
            ledger.add(ids)
            probs = softmax(row_logits.astype(np.float64))
            if target is not None:
                probs = correct_prior(probs, training_prior, target)
            f.write(_csv_rows(ids, probs))
    ledger.check_complete()
    log.info("wrote %d rows to %s", ledger.count, out)
    return {"rows": ledger.count, "prior": None if target is None else target.tolist(),
            "run_id": paths.run_id}


def _csv_rows(ids: np.ndarray, probs: np.ndarray) -> bytes:
    """CSV lines id,A,B,C,D; Arrow's writer is ~10x faster than pandas' here, and
    float32 keeps the lines short (shortest round-trip digits)."""
    columns = {"id": ids, **{c: probs[:, i].astype(np.float32) for i, c in enumerate(spec.CLASSES)}}
    buffer = io.BytesIO()
    pa_csv.write_csv(pa.table(columns), buffer, pa_csv.WriteOptions(include_header=False))
    return buffer.getvalue()
