"""Parsed rows spilled to local files, so a local runner's grouping holds only where they are.

The local runner (FnApiRunner) keeps every PCollection that crosses a stage
boundary in memory, and a GroupByKey's input whole: grouping the parsed rows by
session block held the whole input several times over (13.5 GB for the 18M-row
test set).  With a spill directory, KeySessionBlocks writes each parsed batch's
block parts to one file there, in a compact column layout, and the grouping
carries only (path, offset, length); BuildSegments reads its block's parts back.
Validation records wait for BalanceValidation's class thresholds; they spill too,
and so do the test ids grouped by FindRepeatedIds (KeyIdBuckets).
Memory then follows --chunk-mib and --block-seconds, not the input's size.

The graph is the same either way: only what travels through GroupSessionBlocks
differs.  Dataflow's shuffle keeps grouped data on disk itself and its workers do
not share a local disk, so there the rows travel in the elements (no spill).

A run's spill folder is removed when the run ends, but a killed run cannot do
that, and its folder holds about 0.55x the CSVs' size.  So the folder's name says
whose it is, pilotstate-spill-<host>-<pid namespace>-<pid>-<random>, and every run
that spills first removes the folders beside its own that a run on this machine
left behind: its host and pid namespace, a pid no longer running, nothing in it but
spill files (SPILL_FILE).  Anything else there is left alone (a folder whose pid has
been reused since waits for a run after that process).
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import shutil
import socket
import struct
import tempfile
from typing import Any, Iterable, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_preprocess.rows import RowBatch
from trainer.records.spec import NUM_CHANNELS, Segment
from trainer.shared.output_claim import pid_running

log = logging.getLogger(__name__)

# Runners that execute the whole job in processes on this machine.
LOCAL_RUNNERS = frozenset({"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner",
                           "SwitchingDirectRunner", "PrismRunner"})

# Column order and dtype of the spilled layout; labels and ids are present or not.
_COLUMNS = (("crew", np.int16), ("experiment", np.uint8), ("seat", np.int8),
            ("time", np.float64), ("signals", np.float32), ("order", np.int64),
            ("labels", np.uint8), ("ids", np.int64))
_OPTIONAL = ("labels", "ids")
_HEADER = struct.Struct("<QQ")  # rows, bit mask of the optional columns present

SPILL_FOLDER_PREFIX = "pilotstate-spill-"
# Every file a spill folder holds: spill_file_name's and spill_segment's.
SPILL_FILE = re.compile(r"(?:rows|ids)-[0-9a-f]{16}\.bin|segment-[^/]+\.pkl")
_MIB = 1 << 20


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


def _spill(path: str, encoded: Iterable[tuple[Any, bytes]]) -> list[tuple[Any, SpillLocation]]:
    """Writes the encoded parts one after the other to `path` (one at a time: each is
    dropped once written); returns (key, location) for each."""
    located = []
    with open(path, "wb") as f:
        for key, data in encoded:
            located.append((key, SpillLocation(path, f.tell(), len(data))))
            f.write(data)
    return located


def spill_parts(parts: Iterable[tuple[tuple, tuple[int, RowBatch]]], path: str
                ) -> list[tuple[tuple, tuple[int, SpillLocation]]]:
    """Writes the block parts of one parsed batch to `path`; returns their locations."""
    located = _spill(path, (((key, role), encode_rows(rows)) for key, (role, rows) in parts))
    return [(key, (role, where)) for (key, role), where in located]


def spill_id_parts(parts: Iterable[tuple[int, np.ndarray]], path: str
                   ) -> list[tuple[int, SpillLocation]]:
    """Writes the id bucket parts ([2, n] int64 arrays) of one parsed batch to `path`;
    returns their locations."""
    return _spill(path, ((bucket, np.ascontiguousarray(part, np.int64).tobytes())
                         for bucket, part in parts))


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


def load_ids(stored: Union[np.ndarray, SpillLocation]) -> np.ndarray:
    """An id bucket part ([2, n] ids and order keys): as it travelled, or read back."""
    if isinstance(stored, np.ndarray):
        return stored
    return np.frombuffer(_read(stored), np.int64).reshape(2, -1)


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


def spill_file_name(batch: RowBatch, content: str = "rows") -> str:
    """A name unique to a parsed batch and what is spilled of it ("rows" or "ids"): its
    first row's file order key."""
    return f"{content}-{int(batch.order[0]):016x}.bin"


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


def _machine_prefix() -> str:
    """pilotstate-spill-<host>-<pid namespace>-: where a pid names the same process."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:   # no /proc (not Linux): one namespace
        namespace = 0
    return f"{SPILL_FOLDER_PREFIX}{host}-{namespace}-"


def spill_folder_prefix(pid: int) -> str:
    """The start of the names of the spill folders of process `pid` of this machine
    (tempfile adds a random end)."""
    return f"{_machine_prefix()}{pid}-"


def remove_dead_spill_folders(parent: str) -> None:
    """Removes the spill folders in `parent` left behind by killed runs of this machine
    (see the module doc), with a warning naming each and its size."""
    ours = re.compile(re.escape(_machine_prefix()) + r"(\d+)-[a-z0-9_]+")
    with os.scandir(parent) as entries:
        folders = [e for e in entries if ours.fullmatch(e.name)]
    for folder in folders:
        match = ours.fullmatch(folder.name)
        if not folder.is_dir(follow_symlinks=False) or pid_running(int(match[1])):
            continue
        try:
            with os.scandir(folder.path) as entries:
                files = list(entries)
            if not all(f.is_file(follow_symlinks=False) and SPILL_FILE.fullmatch(f.name)
                       for f in files):
                continue
            size = sum(f.stat(follow_symlinks=False).st_size for f in files)
            shutil.rmtree(folder.path)
        except FileNotFoundError:   # removed meanwhile by another run
            continue
        except OSError as err:
            log.warning(f"warning: could not remove {folder.path}, the spill folder of an "
                        f"earlier run (pid {match[1]}) that was stopped: {err}")
            continue
        log.warning(f"warning: removed {folder.path}, the spill folder of an earlier run "
                    f"(pid {match[1]}, no longer running) that was stopped before it could "
                    f"remove it: {size / _MIB:.1f} MiB")


@contextlib.contextmanager
def spill_directory(choice: str, parent: Optional[str],
                    beam_args: Sequence[str]) -> Iterator[Optional[str]]:
    """A fresh directory for one run's spill files (removed afterwards), or None.
    Spill folders that killed runs left in the same place are removed first."""
    if not spills(choice, beam_args):
        yield None
        return
    parent = parent or tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)
    remove_dead_spill_folders(parent)
    with tempfile.TemporaryDirectory(prefix=spill_folder_prefix(os.getpid()),
                                     dir=parent) as path:
        yield path
