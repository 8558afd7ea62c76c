"""Sessions of the stand-in data: how many rows, at which times, with which labels.

A session is one (crew, experiment) recording of both seats.  Both seats share the
session's list of times (true of the real test; in our train too, for simplicity)
and the crew's event schedule; each seat's block boundaries are jittered by up to
0.05 s, so the seats' transitions lie within ~0.1 s of each other as in the real
files.

Scale semantics (``--scale``): every session's row count is the real one times
`scale`, but at least `MIN_SESSION_SECONDS` (12 s), so that even tiny sessions
reach t >= 10 s and show the text-sorted order's backward jumps; below scale
~0.034 train therefore has more rows than `scale` x the real count.  Event schedules are laid out on the
scaled duration with the real *shares* (D 12-16% of DA, B ~8.3% of SS, a short A
prefix in CA), so the class shares hold at any scale; a block keeps its real length
(D ~5 s, B ~15 s) while the session has room for it and is then shortened, but never
below `MIN_BLOCK_SECONDS`.  Every session therefore holds its experiment's state,
and every crew has all four classes.  Below scale ~0.07 the 2 s floor inflates the
B and D shares (at 0.05: B ~3.7% instead of 2.7%).

Events at their real length (``--events real``): a shorter session holds fewer
events, not shorter ones.  A training block keeps the length it has at scale 1 (D
~5 s, B ~15 s, CA's A prefix 0.5-0.8 s) and a session holds as many as take its
experiment's share of it, but at least one, so every session still holds its state
(at scale 0.1 an SS session of 36 s holds one 15-s B block: B shares grow as the
scale shrinks); train sessions last at least `REAL_EVENTS_MIN_SESSION_SECONDS` so
that a B block fits with baseline around it.  A LOFT session is a stretch, at a
seeded offset, of a flight laid out at full length (baseline stretches of 2-5 min,
C 30-90 s, D 5-10 s, B 15 s), so its class shares are the real ones on average and
a short session holds one or two events, or none.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from beam_preprocess.kaggle_schema import CREWS, TEST_EXPERIMENT, TRAIN_EXPERIMENTS
from trainer.records.spec import CLASSES, SAMPLE_RATE_HZ

LABEL = {name: index for index, name in enumerate(CLASSES)}

# Rows per seat of a real train session (18 x CA + 18 x DA + 16 x SS + 2 short SS
# = 4,867,422 rows; the real file has 4,867,421).
TRAIN_ROWS = {"CA": 92_132, "DA": 92_133, "SS": 91_978}
SHORT_SS_CREW = 1
SHORT_SS_ROWS = 39_502
# Rows per seat of each crew's LOFT session (x 2 seats = 17,965,142 test rows).
LOFT_ROWS = {
    1: 1_037_808, 2: 985_412, 3: 1_004_217, 4: 979_856, 5: 998_031,
    6: 1_012_644, 7: 969_382, 8: 1_001_129, 13: 994_092,
}

MIN_SESSION_SECONDS = 12.0  # >= 10 s: time-as-text order jumps back in every session
REAL_EVENTS_MIN_SESSION_SECONDS = 24.0  # a 15-s B block with baseline on both sides
EVENTS = ("scaled", "real")  # how event lengths follow --scale
MIN_BLOCK_SECONDS = 2.0
SEAT_JITTER_SECONDS = 0.05
OFF_GRID_STAMPS = 2  # per session, e.g. 0.003 in place of 0.00390625

# Missing-time holes: (fraction of the session's span, holes per session at scale 1).
# Train sessions are ~0.13% short of their span (92,132 rows up to t = 360.37 s).
TRAIN_HOLES = (0.0013, 3)
LOFT_HOLES = (0.03, 24)

EXPERIMENT_CODE = {name: code for code, name in enumerate(TRAIN_EXPERIMENTS + (TEST_EXPERIMENT,))}


@dataclasses.dataclass(frozen=True)
class Session:
    """One (crew, experiment) recording: a shared time list and per-seat labels."""

    crew: int
    experiment: str
    times: np.ndarray                # float64 seconds, strictly increasing
    labels: tuple[np.ndarray, ...]   # per seat, uint8 index into CLASSES

    @property
    def num_rows(self) -> int:
        return len(self.times)


def session_rows(crew: int, experiment: str, scale: float, events: str = "scaled") -> int:
    """Rows per seat of a session at `scale` (`events`: see the module docstring)."""
    if experiment == TEST_EXPERIMENT:
        real = LOFT_ROWS[crew]
    elif experiment == "SS" and crew == SHORT_SS_CREW:
        real = SHORT_SS_ROWS
    else:
        real = TRAIN_ROWS[experiment]
    shortest = MIN_SESSION_SECONDS
    if events == "real" and experiment != TEST_EXPERIMENT:
        shortest = REAL_EVENTS_MIN_SESSION_SECONDS
    return max(int(shortest * SAMPLE_RATE_HZ), round(real * scale))


def expected_rows(scale: float, events: str = "scaled") -> dict[str, int]:
    """Data rows of train.csv and test.csv at `scale` (both seats), without generating."""
    train = sum(2 * session_rows(c, e, scale, events) for c in CREWS for e in TRAIN_EXPERIMENTS)
    test = sum(2 * session_rows(c, TEST_EXPERIMENT, scale, events) for c in CREWS)
    return {"train": train, "test": test}


def session_rng(seed: int, crew: int, experiment: str, purpose: int) -> np.random.Generator:
    """An independent stream per (seed, crew, experiment, purpose); scale-independent."""
    return np.random.default_rng([seed, crew, EXPERIMENT_CODE[experiment], purpose])


def grid_times(rows: int, hole_fraction: float, holes: int, rng: np.random.Generator) -> np.ndarray:
    """`rows` strictly increasing times on the 1/256 s grid with missing-time holes
    (`hole_fraction` of `rows` missing ticks in `holes` holes) and a few off-grid stamps."""
    ticks = np.arange(rows, dtype=np.int64)
    missing = round(rows * hole_fraction)
    holes = min(holes, missing, rows - 1)
    if holes > 0:
        sizes = 1 + rng.multinomial(missing - holes, np.full(holes, 1.0 / holes))
        after = np.sort(rng.choice(np.arange(1, rows), size=holes, replace=False))
        shift = np.zeros(rows, dtype=np.int64)
        np.add.at(shift, after, sizes)
        ticks += np.cumsum(shift)
    times = ticks / SAMPLE_RATE_HZ
    # Truncating to whole milliseconds stays above the previous stamp (>= 1/256 s back).
    for index in rng.choice(np.arange(1, rows), size=min(OFF_GRID_STAMPS, rows - 1), replace=False):
        times[index] = math.floor(times[index] * 1000.0) / 1000.0
    return times


def block_length(duration: float, share: float, nominal: float,
                 real_duration: float | None = None) -> tuple[int, float]:
    """(number of blocks, block length in s) for a state taking `share` of `duration`
    in blocks of about `nominal` seconds, never shorter than MIN_BLOCK_SECONDS.

    With `real_duration` (events at their real length) the blocks are as long as in a
    session of that length, and as many as take `share` of `duration`, at least one."""
    if real_duration is not None:
        length = block_length(real_duration, share, nominal)[1]
        return max(1, round(share * duration / length)), length
    count = max(1, round(share * duration / nominal))
    return count, max(MIN_BLOCK_SECONDS, share * duration / count)


def spread_blocks(duration: float, count: int, length: float, state: str,
                  rng: np.random.Generator) -> list[tuple[float, float, str]]:
    """`count` blocks, one in each equal slot of the session, placed at random in it."""
    slot = duration / count
    intervals = []
    for index in range(count):
        start = index * slot + rng.uniform(0.2, 0.8) * max(0.0, slot - length)
        intervals.append((start, start + length, state))
    return intervals


def ca_schedule(duration: float, crew: int, scale: float, rng: np.random.Generator):
    """A for the first 0.5-0.8 s (6.6 s for crew 1) at scale 1, then C to the end."""
    prefix = 6.6 if crew == SHORT_SS_CREW else rng.uniform(0.5, 0.8)
    prefix = max(0.2, prefix * min(1.0, scale))
    return [(prefix, duration + 1.0, "C")]


def da_schedule(duration: float, rng: np.random.Generator, real_duration: float | None = None):
    """A, with D blocks of ~5 s taking 12-16% of the session (one every 26-46 s)."""
    count, length = block_length(duration, rng.uniform(0.12, 0.16), 5.0, real_duration)
    return spread_blocks(duration, count, length, "D", rng)


def ss_schedule(duration: float, crew: int, rng: np.random.Generator,
                real_duration: float | None = None):
    """A, with one or two ~15 s B blocks taking ~8.3% (crew 1: ~9.7%) of the session."""
    share = 0.097 if crew == SHORT_SS_CREW else rng.uniform(0.078, 0.088)
    count, length = block_length(duration, share, 15.0, real_duration)
    return spread_blocks(duration, count, length, "B", rng)


# LOFT: baseline stretches alternating with an event drawn from these (probability,
# (min s, max s) at scale 1).  A line-oriented flight is mostly routine: the real
# LOFT sessions' class prior is far from the training prior (A ~0.88 against ~0.58),
# which is what makes the test prior worth estimating.  Expected shares here:
# A ~88%, C ~8.8%, B ~1.6%, D ~1.3% (~17 episodes in a 67-min session).
LOFT_BASELINE_SECONDS = (120.0, 300.0)
LOFT_EVENTS = {"C": (0.35, (30.0, 90.0)), "D": (0.40, (5.0, 10.0)), "B": (0.25, (15.0, 15.0))}


def loft_schedule(duration: float, scale: float, rng: np.random.Generator):
    """A flight: baseline stretches alternating with C, D or B episodes."""
    names = list(LOFT_EVENTS)
    probabilities = [LOFT_EVENTS[name][0] for name in names]
    intervals, cursor = [], 0.0
    while True:
        cursor += max(MIN_BLOCK_SECONDS, rng.uniform(*LOFT_BASELINE_SECONDS) * scale)
        state = names[rng.choice(len(names), p=probabilities)]
        length = max(MIN_BLOCK_SECONDS, rng.uniform(*LOFT_EVENTS[state][1]) * scale)
        if cursor + length > duration:
            return intervals
        intervals.append((cursor, cursor + length, state))
        cursor += length


def loft_stretch(duration: float, real_duration: float, rng: np.random.Generator):
    """`duration` seconds, from a seeded offset, of a flight laid out at full length
    over `real_duration`: events keep their real length; those cut by the ends are cut."""
    offset = rng.uniform(0.0, max(0.0, real_duration - duration))
    return [(max(0.0, start - offset), min(duration, end - offset), state)
            for start, end, state in loft_schedule(real_duration, 1.0, rng)
            if end > offset and start < offset + duration]


def seat_labels(times: np.ndarray, intervals, rng: np.random.Generator) -> np.ndarray:
    """Label each time: A unless inside an interval, whose ends are jittered per seat."""
    labels = np.full(len(times), LABEL["A"], dtype=np.uint8)
    for start, end, state in intervals:
        start += rng.uniform(-SEAT_JITTER_SECONDS, SEAT_JITTER_SECONDS)
        end += rng.uniform(-SEAT_JITTER_SECONDS, SEAT_JITTER_SECONDS)
        labels[np.searchsorted(times, start):np.searchsorted(times, end)] = LABEL[state]
    return labels


def build_session(seed: int, crew: int, experiment: str, scale: float, seats: int = 2,
                  events: str = "scaled") -> Session:
    """The time list and per-seat labels of one session; deterministic in (seed, crew,
    experiment, scale, events)."""
    if events not in EVENTS:
        raise ValueError(f"unknown events {events!r}; expected one of {EVENTS}")
    rng = session_rng(seed, crew, experiment, purpose=0)
    rows = session_rows(crew, experiment, scale, events)
    fraction, holes = LOFT_HOLES if experiment == TEST_EXPERIMENT else TRAIN_HOLES
    times = grid_times(rows, fraction, max(1, round(holes * scale)), rng)
    duration = float(times[-1])
    real = events == "real"
    # The session's length at scale 1: real events are as long as they are there.
    real_duration = duration * session_rows(crew, experiment, 1.0) / rows if real else None
    if experiment == "CA":
        intervals = ca_schedule(duration, crew, 1.0 if real else scale, rng)
    elif experiment == "DA":
        intervals = da_schedule(duration, rng, real_duration)
    elif experiment == "SS":
        intervals = ss_schedule(duration, crew, rng, real_duration)
    elif real:
        intervals = loft_stretch(duration, real_duration, rng)
    else:
        intervals = loft_schedule(duration, scale, rng)
    labels = tuple(seat_labels(times, intervals, rng) for _ in range(seats))
    return Session(crew=crew, experiment=experiment, times=times, labels=labels)
