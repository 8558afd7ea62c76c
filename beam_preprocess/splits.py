"""Leak-free train/validation split by contiguous time units.

A unit is (crew, experiment, floor(time / unit_seconds)); both seats of a unit go
to the same split, as they share the crew's event schedule.  Units are chosen for
validation in seeded-hash order, stratified by class: classes from the rarest up
take units until they hold `valid_fraction` of the class's window ends.  With
holdout crews, validation is those crews instead.  The purge between splits is
done by the segments: a run of rows never carries context across a split change,
so the first window-1 rows after a boundary end no window.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

from beam_preprocess.rows import RowBatch, iter_groups
from beam_preprocess.seeded_hash import hash_columns
from trainer.records import spec as record_spec

TRAIN, VALID, TEST = (record_spec.SPLITS.index(s) for s in ("train", "valid", "test"))
NUM_CLASSES = record_spec.NUM_CLASSES


class SplitError(ValueError):
    """The data do not allow the requested validation split."""


def time_units(time: np.ndarray, unit_seconds: float) -> np.ndarray:
    return np.floor(time / unit_seconds).astype(np.int64)


def unit_codes(crew, experiment, unit) -> np.ndarray:
    """One int64 per (crew, experiment, unit), for vectorised membership tests."""
    return ((np.asarray(crew, np.int64) << 40) | (np.asarray(experiment, np.int64) << 32)
            | (np.asarray(unit, np.int64) & 0xFFFFFFFF))


def unit_histograms(batch: RowBatch, unit_seconds: float,
                    window: int) -> Iterator[tuple[tuple, np.ndarray]]:
    """((crew, experiment, unit), counts[2, classes]) per unit in a batch.

    Row 0 counts rows per class; row 1 the rows far enough (window - 1 samples)
    from the unit's start to end a window even if the unit stands alone.
    """
    units = time_units(batch.time, unit_seconds)
    far = batch.time - units * unit_seconds >= (window - 1) / record_spec.SAMPLE_RATE_HZ
    for key, index in iter_groups(batch.crew, batch.experiment, units):
        counts = np.zeros((2, NUM_CLASSES), np.int64)
        labels = batch.labels[index]
        counts[0] = np.bincount(labels, minlength=NUM_CLASSES)
        counts[1] = np.bincount(labels[far[index]], minlength=NUM_CLASSES)
        yield key, counts


def choose_validation_units(histograms: Iterable[tuple[tuple, np.ndarray]],
                            valid_fraction: float, seed: int) -> frozenset:
    """Units of the validation split: seeded, stratified by class."""
    units = sorted((tuple(k), np.asarray(v)) for k, v in histograms)
    if valid_fraction <= 0 or not units:
        return frozenset()
    keys = np.array([k for k, _ in units], dtype=np.int64)
    ends = np.stack([v[1] for _, v in units])  # [units, classes]
    rank = np.argsort(hash_columns(seed, keys[:, 0], keys[:, 1], keys[:, 2]), kind="stable")
    chosen = np.zeros(len(units), bool)
    totals = ends.sum(axis=0)
    rows = np.stack([v[0] for _, v in units]).sum(axis=0)
    present = [c for c in np.argsort(totals, kind="stable") if rows[c] > 0]
    for cls in present:
        holders = [u for u in rank if ends[u, cls] > 0]
        target = valid_fraction * totals[cls]
        for u in holders[:max(len(holders) - 1, 1)]:  # leave one unit for training
            if ends[chosen, cls].sum() >= target:
                break
            chosen[u] = True
        if ends[chosen, cls].sum() == 0:
            raise SplitError(
                f"class {record_spec.CLASSES[cls]} has no validation window: too little "
                "data for a validation unit of it; use --holdout-crews, a smaller "
                "--valid-block-seconds or more data")
    return frozenset(units[u][0] for u in np.flatnonzero(chosen))


def _listed(crews: Iterable[int]) -> str:
    return ", ".join(str(c) for c in sorted(crews)) or "none"


def batch_crews(batch: RowBatch) -> frozenset:
    """The crews a batch of rows holds."""
    return frozenset(np.unique(batch.crew).tolist())


def holdout_validation_units(crews: Iterable[int], holdout_crews: Sequence[int]) -> frozenset:
    """The validation units with --holdout-crews: none, as validation is those crews;
    but only once every holdout crew has training rows (`crews`: the crews they hold)
    and some crew is left for training, as either split would be empty otherwise."""
    crews, holdout = frozenset(crews), frozenset(holdout_crews)
    option = f"--holdout-crews {','.join(str(c) for c in sorted(holdout))}"
    missing = holdout - crews
    if missing:
        raise SplitError(f"{option}: the training data has no rows of crew "
                         f"{_listed(missing)} (its crews: {_listed(crews)}); choose among those")
    if crews <= holdout:
        raise SplitError(f"{option} takes every crew of the training data ({_listed(crews)}), "
                         "so no training rows are left: leave at least one crew out")
    return frozenset()


class SplitAssigner:
    """Split of every row: test rows are test; train rows train or valid."""

    def __init__(self, valid_units: frozenset, holdout_crews: Sequence[int],
                 unit_seconds: float):
        keys = np.array(sorted(valid_units), np.int64).reshape(-1, 3)
        self._valid_codes = unit_codes(keys[:, 0], keys[:, 1], keys[:, 2])
        self._holdout = np.asarray(sorted(holdout_crews), np.int64)
        self._unit_seconds = unit_seconds

    def splits(self, batch: RowBatch) -> np.ndarray:
        out = np.full(len(batch), TRAIN, np.int8)
        if batch.ids is not None:
            out[:] = TEST
            return out
        if len(self._holdout):
            out[np.isin(batch.crew, self._holdout)] = VALID
            return out
        if len(self._valid_codes):
            codes = unit_codes(batch.crew, batch.experiment,
                               time_units(batch.time, self._unit_seconds))
            out[np.isin(codes, self._valid_codes)] = VALID
        return out
