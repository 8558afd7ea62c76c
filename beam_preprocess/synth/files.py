"""Write train.csv, test.csv and test_labels.csv, one session at a time.

Memory holds one session (both seats) at a time, never a whole file; at scale 1
the largest session is a LOFT of ~1.04M rows per seat.  The test `id` is the row
number in file order (0-based), like the real test file's.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import numpy as np

from beam_preprocess.kaggle_schema import (
    CREWS, SEATS, TEST_COLUMNS, TEST_EXPERIMENT, TRAIN_COLUMNS, TRAIN_EXPERIMENTS,
)
from beam_preprocess.synth import layout, physiology, signals, writer
from trainer.records.spec import CHANNELS, CLASSES

SPLITS = ("train", "test")
LABEL_COLUMNS = ("id", "event")
FLATLINES_PER_LOFT = 6  # EEG flat-line stretches per seat at scale 1 (>= 1)


@dataclasses.dataclass(frozen=True)
class Quirks:
    """Which sessions are broken, drawn from the seed: whole-session drop-outs
    (channel read as 0.0) keyed by (crew, experiment, seat), and the crew whose ecg
    is all non-positive."""

    dropouts: dict
    negative_ecg_crew: int


def draw_quirks(seed: int) -> Quirks:
    """Two ecg and one gsr drop-out in train, one gsr drop-out in test."""
    rng = np.random.default_rng([seed, 9])
    train_keys = [(c, e, s) for c in CREWS for e in TRAIN_EXPERIMENTS for s in SEATS]
    picks = rng.choice(len(train_keys), size=3, replace=False)
    dropouts = {train_keys[i]: name for i, name in zip(picks, ("ecg", "ecg", "gsr"))}
    dropouts[(int(rng.choice(CREWS)), TEST_EXPERIMENT, int(rng.choice(SEATS)))] = "gsr"
    return Quirks(dropouts=dropouts, negative_ecg_crew=int(rng.choice(CREWS)))


def session_signals(seed: int, session: layout.Session, scale: float, quirks: Quirks,
                    states: physiology.Physiology) -> list[np.ndarray]:
    """(rows, 23) signals of each seat of `session`, with its drop-outs and flat-lines;
    each pilot shows the states as `states` says, at the pilot's own gain and latency."""
    result = []
    for seat, labels in zip(SEATS, session.labels):
        profile = signals.seat_profile(seed, session.crew, seat, session.crew == quirks.negative_ecg_crew)
        rng = layout.session_rng(seed, session.crew, session.experiment, purpose=1 + seat)
        extra = layout.session_rng(seed, session.crew, session.experiment, purpose=3 + seat)
        gain, latency = states.pilot_response(seed, session.crew, seat)
        values = signals.seat_signals(profile, signals.delayed(labels, latency), rng,
                                      states.for_pilot(gain), extra)
        if session.experiment == TEST_EXPERIMENT:
            signals.flatline_eeg(values, max(1, round(FLATLINES_PER_LOFT * scale)), scale, rng)
        dropped = quirks.dropouts.get((session.crew, session.experiment, seat))
        if dropped:
            values[:, CHANNELS.index(dropped)] = 0.0
        result.append(values)
    return result


def split_sessions(split: str) -> Iterable[tuple[int, str]]:
    """(crew, experiment) of a split's sessions, in file order."""
    experiments = TRAIN_EXPERIMENTS if split == "train" else (TEST_EXPERIMENT,)
    return [(crew, experiment) for crew in CREWS for experiment in experiments]


def write_split(split: str, out_dir: str, scale: float, seed: int, compress: bool,
                states: physiology.Physiology, events: str) -> dict[str, dict]:
    """Write one split's file(s); return {file name: {"rows", "bytes"}}."""
    quirks = draw_quirks(seed)
    is_test = split == "test"
    data = writer.CsvSink(os.path.join(out_dir, f"{split}.csv"),
                          TEST_COLUMNS if is_test else TRAIN_COLUMNS, compress)
    sinks = [data]
    if is_test:
        sinks.append(writer.CsvSink(os.path.join(out_dir, "test_labels.csv"), LABEL_COLUMNS, compress))
    for crew, experiment in split_sessions(split):
        session = layout.build_session(seed, crew, experiment, scale, events=events)
        chunks = writer.session_text(f"{crew},{experiment}", session.times,
                                     session_signals(seed, session, scale, quirks, states), session.labels,
                                     CLASSES, signals.DECIMALS, data.rows if is_test else None)
        for text, label_text, rows in chunks:
            data.write_rows(text, rows)
            if is_test:
                sinks[1].write_rows(label_text, rows)
    return {os.path.basename(s.path): {"rows": s.rows, "bytes": s.close()} for s in sinks}


def generate(out_dir: str, scale: float, seed: int, splits: Iterable[str] = SPLITS,
             compress: bool = False, physiology_name: str = physiology.DEFAULT,
             events: str = "scaled") -> dict[str, dict]:
    """Generate the requested splits into `out_dir`; return rows and bytes per file.

    `physiology_name` says where the states show (`synth.physiology`); `events` whether
    event lengths shrink with `scale` ("scaled") or keep their real length ("real")."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    states = physiology.get(physiology_name)
    if events not in layout.EVENTS:
        raise ValueError(f"unknown events {events!r}; expected one of {layout.EVENTS}")
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected some of {SPLITS}")
    os.makedirs(out_dir, exist_ok=True)
    summary: dict[str, dict] = {}
    for split in SPLITS:
        if split in splits:
            summary.update(write_split(split, out_dir, scale, seed, compress, states, events))
    return summary
