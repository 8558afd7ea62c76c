"""Parsed rows spilled to local files, so a local runner's grouping holds only where they are.

The local runner (FnApiRunner) keeps every PCollection that crosses a stage
boundary in memory, and a GroupByKey's input whole: grouping the parsed rows by
session block held the whole input several times over (13.5 GB for the 18M-row
test set).  With a spill directory, KeySessionBlocks writes each parsed batch's
block parts to one file there, in a compact column layout, and the grouping
carries only (path, offset, length); BuildSegments reads its block's parts back.
Validation records wait for BalanceValidation's class thresholds; they spill too.
Memory then follows --chunk-mib and --block-seconds, not the input's size.

The graph is the same either way: only what travels through GroupSessionBlocks
differs.  Dataflow's shuffle keeps grouped data on disk itself and its workers do
not share a local disk, so there the rows travel in the elements (no spill).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import struct
import tempfile
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_preprocess.rows import RowBatch
from trainer.record_spec import NUM_CHANNELS, Segment

# Runners that execute the whole job in processes on this machine.
LOCAL_RUNNERS = frozenset({"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner",
                           "SwitchingDirectRunner", "PrismRunner"})

# Column order and dtype of the spilled layout; labels and ids are present or not.
_COLUMNS = (("crew", np.int16), ("experiment", np.uint8), ("seat", np.int8),
            ("time", np.float64), ("signals", np.float32), ("order", np.int64),
            ("labels", np.uint8), ("ids", np.int64))
_OPTIONAL = ("labels", "ids")
_HEADER = struct.Struct("<QQ")  # rows, bit mask of the optional columns present


class SpillLocation(NamedTuple):
    """Where a spilled element is: a byte range of a local file."""

    path: str
    offset: int
    length: int


def encode_rows(rows: RowBatch) -> bytes:
    """The rows as their columns' bytes, one column after the other."""
    present = 0
    parts = []
    for name, dtype in _COLUMNS:
        values = getattr(rows, name)
        if values is None:
            continue
        if name in _OPTIONAL:
            present |= 1 << _OPTIONAL.index(name)
        parts.append(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return _HEADER.pack(len(rows), present) + b"".join(parts)


def decode_rows(data: Union[bytes, bytearray, memoryview]) -> RowBatch:
    """encode_rows' inverse (arrays are views of `data`; pass a bytearray to own them)."""
    n, present = _HEADER.unpack_from(data)
    offset, columns = _HEADER.size, {}
    for name, dtype in _COLUMNS:
        if name in _OPTIONAL and not present >> _OPTIONAL.index(name) & 1:
            columns[name] = None
            continue
        shape = (n, NUM_CHANNELS) if name == "signals" else (n,)
        values = np.frombuffer(data, dtype, int(np.prod(shape)), offset)
        columns[name] = values.reshape(shape)
        offset += values.nbytes
    return RowBatch(**columns)


def spill_parts(parts: Iterable[tuple[tuple, tuple[int, RowBatch]]], path: str
                ) -> list[tuple[tuple, tuple[int, SpillLocation]]]:
    """Writes the block parts of one parsed batch to `path`; returns their locations."""
    located = []
    with open(path, "wb") as f:
        for key, (role, rows) in parts:
            data = encode_rows(rows)
            located.append((key, (role, SpillLocation(path, f.tell(), len(data)))))
            f.write(data)
    return located


def _read(where: SpillLocation) -> bytearray:
    buffer = bytearray(where.length)
    with open(where.path, "rb") as f:
        f.seek(where.offset)
        if f.readinto(buffer) != where.length:
            raise RuntimeError(f"spill file {where.path} is shorter than expected "
                               f"(was it removed while the job ran?)")
    return buffer


def load_rows(stored: Union[RowBatch, SpillLocation]) -> RowBatch:
    """A block part's rows: as they travelled, or read back from their spill file."""
    return stored if isinstance(stored, RowBatch) else decode_rows(_read(stored))


def spill_segment(segment: Segment, directory: str) -> SpillLocation:
    """Writes a validation record to its own file (BalanceValidation holds them all until
    the class thresholds are known)."""
    data = pickle.dumps(segment, protocol=pickle.HIGHEST_PROTOCOL)
    path = os.path.join(directory, f"segment-{segment.crew}-{segment.seat}-{segment.experiment}"
                                   f"-{segment.block}-{segment.time[0]!r}.pkl")
    with open(path, "wb") as f:
        f.write(data)
    return SpillLocation(path, 0, len(data))


def load_segment(stored: Union[Segment, SpillLocation]) -> Segment:
    """A record: as it travelled, or read back from its spill file (our own file)."""
    return pickle.loads(_read(stored)) if isinstance(stored, SpillLocation) else stored


def spill_file_name(batch: RowBatch) -> str:
    """A name unique to a parsed batch: its first row's file order key."""
    return f"rows-{int(batch.order[0]):016x}.bin"


def runner_name(beam_args: Sequence[str]) -> Optional[str]:
    runner = PipelineOptions(list(beam_args)).view_as(StandardOptions).runner
    return runner if runner is None or isinstance(runner, str) else type(runner).__name__


def spills(choice: str, beam_args: Sequence[str]) -> bool:
    """Whether this run spills: --spill on/off, or auto = on exactly for local runners."""
    runner = runner_name(beam_args)
    local = runner is None or runner in LOCAL_RUNNERS
    if choice == "on" and not local:
        raise ValueError(f"--spill on needs a local runner: {runner}'s workers cannot read "
                         "this machine's disk (leave --spill at auto)")
    return choice == "on" or (choice == "auto" and local)


@contextlib.contextmanager
def spill_directory(choice: str, parent: Optional[str],
                    beam_args: Sequence[str]) -> Iterator[Optional[str]]:
    """A fresh directory for one run's spill files (removed afterwards), or None."""
    if not spills(choice, beam_args):
        yield None
        return
    if parent:
        os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pilotstate-spill-", dir=parent) as path:
        yield path
