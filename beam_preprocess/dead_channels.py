"""Dead channels: a channel that holds one value in all rows of a pilot's session.

Scaling gives a constant channel scale 1 (scaling.py), so it passes into the
records as a constant without any sign; the job names each one, per input
(train or test), crew, experiment and seat, in the manifest and the log.

This is a per-session minimum and maximum per channel, taken from the parsed
row batches beside the scaling statistics (no second pass over the data).  It
is not folded into the scaling partials: those cover training units only and
train rows only, while a session's channel is dead over all its rows, in any
input.
"""
from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple, Sequence

import apache_beam as beam
import numpy as np

from beam_preprocess import kaggle_schema
from beam_preprocess.rows import RowBatch, iter_groups, order_file_index
from trainer.records import spec as record_spec


class ChannelRange(NamedTuple):
    low: np.ndarray     # float32 [C], minimum per channel
    high: np.ndarray    # float32 [C], maximum per channel
    rows: int
    files: frozenset    # input file indices the rows came from


def session_ranges(batch: RowBatch, kind: str) -> Iterator[tuple[tuple, ChannelRange]]:
    """((kind, crew, experiment, seat), ChannelRange) per session in a parsed batch
    (the rows of one chunk of one file)."""
    if not len(batch):
        return
    files = frozenset([order_file_index(batch.order[0])])
    for (crew, experiment, seat), index in iter_groups(batch.crew, batch.experiment, batch.seat):
        signals = batch.signals[index]
        yield ((kind, crew, kaggle_schema.EXPERIMENTS[experiment], seat),
               ChannelRange(signals.min(axis=0), signals.max(axis=0), len(index), files))


def merge_ranges(ranges: Iterable[ChannelRange]) -> ChannelRange:
    ranges = list(ranges)
    return ChannelRange(np.min([r.low for r in ranges], axis=0),
                        np.max([r.high for r in ranges], axis=0),
                        sum(r.rows for r in ranges),
                        frozenset().union(*(r.files for r in ranges)))


def dead_channel_entries(session: tuple[tuple, ChannelRange], paths: Sequence[str]) -> list[dict]:
    """Manifest entries for the constant channels of one session."""
    (kind, crew, experiment, seat), channel_range = session
    files = [paths[i] for i in sorted(channel_range.files)]
    return [{"input": kind, "files": files, "crew": crew, "experiment": experiment,
             "seat": seat, "channel": record_spec.CHANNELS[c],
             "value": float(str(channel_range.low[c])),  # float32's shortest text
             "rows": channel_range.rows}
            for c in np.flatnonzero(channel_range.low == channel_range.high)]


def sort_key(entry: dict) -> tuple:
    return (entry["input"], entry["crew"], entry["experiment"], entry["seat"],
            record_spec.CHANNELS.index(entry["channel"]))


class FindDeadChannels(beam.PTransform):
    """Parsed rows of one input kind -> a dead-channel entry per constant channel
    of a session."""

    def __init__(self, kind: str, paths: Sequence[str]):
        super().__init__()
        self._kind, self._paths = kind, list(paths)

    def expand(self, rows):
        return (
            rows
            | "SessionRanges" >> beam.FlatMap(session_ranges, self._kind)
            | "MergePerSession" >> beam.CombinePerKey(merge_ranges)
            | "ConstantChannels" >> beam.FlatMap(dead_channel_entries, self._paths))


def describe(entries: Sequence[dict], shown: int = 6) -> list[str]:
    """Log lines: one per (input, channel, value), naming up to `shown` sessions."""
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        groups.setdefault((e["input"], e["channel"], e["value"]), []).append(e)
    lines = []
    for (kind, channel, value), members in groups.items():
        sessions = ", ".join(f"crew {e['crew']} {e['experiment']} seat {e['seat']}"
                             for e in members[:shown])
        more = f" and {len(members) - shown} more" if len(members) > shown else ""
        files = sorted({f for e in members for f in e["files"]})
        lines.append(f"dead channel {channel} (constant {value:g}) in {len(members)} "
                     f"{kind} session(s) of {', '.join(files)}: {sessions}{more}")
    return lines
