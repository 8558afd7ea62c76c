"""Per-channel scaling statistics from training rows only, applied to every split.

Statistics are gathered while parsing (no extra pass over the data): every batch
yields one partial summary per (crew, experiment, time unit, seat).  Once the
validation units are known, the partials of training units are merged into the
statistics.  Merging sorts the partials first, so the float64 results do not
depend on the order the runner delivers them in.

* standard: mean and population sd, from mergeable (count, mean, M2).
* robust: median and IQR of a seeded bottom-k hash sample of rows (k per unit,
  then `ROBUST_SAMPLE_ROWS` per statistics key): combinable and deterministic.

A dead channel (constant, e.g. ecg stuck at 0) gets scale 1 (dead_channels
names each one per session in the manifest and the log).  With
`--scale-by pilot` a pilot that has no training rows (possible with
`--holdout-crews`) is scaled with the global statistics.
"""
from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple, Optional, Sequence

import apache_beam as beam
import numpy as np

from beam_preprocess import splits
from beam_preprocess.rows import RowBatch, iter_groups
from beam_preprocess.seeded_hash import hash_columns

ROBUST_SAMPLE_PER_UNIT = 128
ROBUST_SAMPLE_ROWS = 1 << 16
GLOBAL_KEY = "global"
_DEAD_SCALE = 1e-6


def pilot_key(crew: int, seat: int) -> str:
    return f"crew{crew}-seat{seat}"


class Moments(NamedTuple):
    first_order: int   # input position of the first row: a deterministic sort key
    count: int
    mean: np.ndarray   # float64 [C]
    m2: np.ndarray     # float64 [C], sum of squared deviations


class Sample(NamedTuple):
    first_order: int
    hashes: np.ndarray  # uint64 [k]
    values: np.ndarray  # float32 [k, C]


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Chan et al.'s parallel merge of two (count, mean, M2) summaries."""
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / n)
    return Moments(min(a.first_order, b.first_order), n, mean, m2)


def merge_samples(a: Sample, b: Sample, k: int = ROBUST_SAMPLE_PER_UNIT) -> Sample:
    """The k rows of smallest hash among both samples."""
    hashes = np.concatenate([a.hashes, b.hashes])
    values = np.concatenate([a.values, b.values])
    keep = np.argsort(hashes, kind="stable")[:k]
    return Sample(min(a.first_order, b.first_order), hashes[keep], values[keep])


def unit_partials(batch: RowBatch, unit_seconds: float, method: str,
                  seed: int) -> Iterator[tuple[tuple, object]]:
    """((crew, experiment, unit, seat), Moments or Sample) for each group of rows."""
    units = splits.time_units(batch.time, unit_seconds)
    row_hash = (hash_columns(seed, batch.crew, batch.experiment, batch.seat, batch.time)
                if method == "robust" else None)
    for key, index in iter_groups(batch.crew, batch.experiment, units, batch.seat):
        first = int(batch.order[index].min())
        x = batch.signals[index].astype(np.float64)
        if method == "standard":
            mean = x.mean(axis=0)
            yield key, Moments(first, len(index), mean, ((x - mean) ** 2).sum(axis=0))
        else:
            keep = np.argsort(row_hash[index], kind="stable")[:ROBUST_SAMPLE_PER_UNIT]
            yield key, Sample(first, row_hash[index][keep], batch.signals[index][keep])


def _merge(partials: Sequence, k: int = ROBUST_SAMPLE_PER_UNIT):
    ordered = sorted(partials, key=lambda p: p.first_order)
    merged = ordered[0]
    for p in ordered[1:]:
        merged = (merge_moments(merged, p) if isinstance(p, Moments)
                  else merge_samples(merged, p, k))
    return merged


class MergePartials(beam.CombineFn):
    """Merges a unit's partial summaries in input order (deterministic float64)."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, partial):
        acc.append(partial)
        return acc

    def merge_accumulators(self, accs):
        return [p for acc in accs for p in acc]

    def extract_output(self, acc):
        return _merge(acc)


def _center_scale(summary) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(summary, Moments):
        center = summary.mean
        scale = np.sqrt(summary.m2 / summary.count)
    else:
        values = summary.values.astype(np.float64)
        center = np.median(values, axis=0)
        q25, q75 = np.percentile(values, [25, 75], axis=0)
        scale = q75 - q25
    dead = ~np.isfinite(scale) | (scale <= _DEAD_SCALE * np.maximum(1.0, np.abs(center)))
    return center, np.where(dead, 1.0, scale)


def compute_statistics(unit_summaries: Iterable[tuple[tuple, object]], method: str,
                       by: str, is_training_unit) -> dict:
    """Statistics (manifest form) from the summaries of the training units."""
    groups: dict[str, list] = {}
    for (crew, experiment, unit, seat), summary in sorted(unit_summaries, key=lambda kv: kv[0]):
        if not is_training_unit(crew, experiment, unit):
            continue
        summary = summary._replace(first_order=len(groups.get(GLOBAL_KEY, ())))
        groups.setdefault(GLOBAL_KEY, []).append(summary)
        if by == "pilot":
            groups.setdefault(pilot_key(crew, seat), []).append(summary)
    if GLOBAL_KEY not in groups:
        raise ValueError("no training rows: cannot compute scaling statistics")
    stats = {"method": method, "by": by, "center": {}, "scale": {}, "rows": {}}
    for key, members in sorted(groups.items()):
        merged = _merge(members, ROBUST_SAMPLE_ROWS)
        center, scale = _center_scale(merged)
        stats["center"][key] = [float(v) for v in center]
        stats["scale"][key] = [float(v) for v in scale]
        if isinstance(merged, Moments):
            stats["rows"][key] = int(merged.count)
    return stats


class Scaler:
    """Applies manifest statistics: (x - center) / scale, per channel, as float32."""

    def __init__(self, stats: dict):
        self._by = stats["by"]
        self._center = {k: np.asarray(v, np.float64) for k, v in stats["center"].items()}
        self._scale = {k: np.asarray(v, np.float64) for k, v in stats["scale"].items()}

    def key(self, crew: int, seat: int) -> str:
        key = pilot_key(crew, seat)
        return key if self._by == "pilot" and key in self._center else GLOBAL_KEY

    def apply(self, signals: np.ndarray, crew: int, seat: int) -> np.ndarray:
        key = self.key(crew, seat)
        return ((signals - self._center[key]) / self._scale[key]).astype(np.float32)


def statistics_from_manifest(manifest: dict, source: str) -> dict:
    stats: Optional[dict] = manifest.get("stats")
    if not stats or GLOBAL_KEY not in stats.get("center", {}):
        raise ValueError(f"{source}: no scaling statistics in this manifest")
    return stats
