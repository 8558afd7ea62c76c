"""Small Kaggle-format CSVs for the beam_preprocess tests (exact schema, broken order)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from beam_preprocess import kaggle_schema as ks

HZ = 256


def train_frame(crews=(1, 2), experiments=("CA", "DA", "SS"), seconds: float = 4.0,
                seed: int = 0) -> pd.DataFrame:
    """Rows of every (crew, experiment, seat) session with class blocks in time."""
    rng = np.random.default_rng(seed)
    parts = []
    n = int(seconds * HZ)
    time = np.arange(n) / HZ
    for crew in crews:
        for experiment in experiments:
            event = np.full(n, "A", dtype=object)
            other = ks.EXPERIMENT_EVENT[experiment]
            event[(time % 2.0) >= 1.0] = other  # 1 s of A, 1 s of the other class
            for seat in ks.SEATS:
                frame = pd.DataFrame({"crew": crew, "experiment": experiment,
                                      "time": time, "seat": seat})
                for i, channel in enumerate(ks.CHANNELS):
                    frame[channel] = np.round(rng.normal(i, 1 + i % 5, n), 5)
                frame["ecg"] = 0.0  # a dead channel
                frame["event"] = event
                parts.append(frame)
    return pd.concat(parts, ignore_index=True)[list(ks.TRAIN_COLUMNS)]


def loft_frame(crews=(1,), seconds: float = 4.0, seed: int = 1,
               hole=(1.5, 2.0)) -> pd.DataFrame:
    """LOFT sessions with a time hole; ids numbered in file order afterwards."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * HZ)) / HZ
    time = time[(time < hole[0]) | (time >= hole[1])]
    parts = []
    for crew in crews:
        for seat in ks.SEATS:
            frame = pd.DataFrame({"crew": crew, "experiment": "LOFT", "time": time, "seat": seat})
            for i, channel in enumerate(ks.CHANNELS):
                frame[channel] = np.round(rng.normal(i, 2, len(time)), 5)
            parts.append(frame)
    frame = text_sorted(pd.concat(parts, ignore_index=True))
    frame.insert(0, "id", np.arange(len(frame)))
    return frame[list(ks.TEST_COLUMNS)]


def text_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """The real files' order: sessions by time *as text*, seats interleaved."""
    text = frame["time"].map(lambda t: f"{t:.8f}")
    order = np.lexsort((frame["seat"].to_numpy(), text.to_numpy(),
                        frame["experiment"].to_numpy(), frame["crew"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def csv_lines(frame: pd.DataFrame) -> list[str]:
    """Header and data lines, with times written like the Kaggle files."""
    out = frame.copy()
    out["time"] = out["time"].map(lambda t: f"{t:.8f}")
    text = out.to_csv(index=False, lineterminator="\n")
    return text.rstrip("\n").split("\n")


def write_lines(path, lines, line_end: str = "\n") -> None:
    with open(path, "w", newline="") as f:
        f.write(line_end.join(lines) + line_end)
