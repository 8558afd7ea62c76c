"""Reading the Kaggle CSVs in byte ranges, so that one big file spreads over workers.

An uncompressed file is cut into ranges of `range_bytes`.  A range [start, end)
owns the lines that *start* inside it; its reader seeks to start - 1, skips to the
first line start and reads on past `end` to the end of the last line it owns.
A compressed file (e.g. .gz) is one range read as a stream, checked to its end
(input_stream: a truncated or corrupt one fails the job naming the file).  The 1-based line
number of a range's first line needs the newlines before it: a cheap first pass
counts b"\\n" per range (a side input).
"""
from __future__ import annotations

import hashlib
from typing import Iterator, NamedTuple, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_preprocess.input_stream import compression_of, open_input

_READ_BYTES = 1 << 22
_FINGERPRINT_BYTES = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"


def count_newlines(data: bytes) -> int:
    """b"\\n" in `data`: numpy's count, ~4x bytes.count's speed and mostly without the GIL
    (another thread of the job runs meanwhile)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == ord("\n")))


class CsvHeaderError(ValueError):
    """An input file whose header is missing, empty or not the Kaggle schema."""


class InputFile(NamedTuple):
    """One input file, checked at pipeline construction time."""

    index: int        # position in the job's list of inputs (file order)
    path: str
    kind: str         # "train" or "test"
    size: int         # bytes on storage
    data_start: int   # byte offset of the first data line (uncompressed files)
    compressed: bool


class ByteRange(NamedTuple):
    file_index: int
    start: int
    end: int          # exclusive; -1 for a whole compressed stream


class LineChunk(NamedTuple):
    """Whole lines of one file; `first_line` is the 1-based number of the first."""

    file_index: int
    first_line: int
    data: bytes


def read_header(path: str) -> tuple[str, int]:
    """The header line (without line end or byte-order mark) and its length in bytes
    with the newline and the mark: the first data line starts that many bytes in.

    A UTF-8 byte-order mark before the header (a CSV saved by Excel) is accepted;
    nothing else reads it, as every later line is found by counting newlines."""
    with open_input(path) as f:  # compression detected from the name
        head = b""
        while b"\n" not in head:
            block = f.read(1 << 16)
            if not block:
                break
            head += block
    mark = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    if not head[mark:].strip():
        raise CsvHeaderError(f"{path}: empty file; expected a header line")
    end = head.find(b"\n")
    line = head[mark:] if end < 0 else head[mark:end]
    length = len(head) if end < 0 else end + 1
    return line.decode("utf-8", errors="replace").rstrip("\r"), length


def check_header(path: str, header: str, expected: Sequence[str]) -> None:
    """Fails naming the file and the first missing, misplaced or extra column."""
    found = [c.strip() for c in header.split(",")]
    for position, column in enumerate(expected):
        if position >= len(found) or found[position] != column:
            if column in found:
                raise CsvHeaderError(
                    f"{path}: header column {column!r} is at position "
                    f"{found.index(column) + 1}, expected at position {position + 1} "
                    f"(columns must be in the order {','.join(expected)})")
            raise CsvHeaderError(
                f"{path}: header is missing column {column!r} "
                f"(expected {','.join(expected)})")
    if len(found) > len(expected):
        raise CsvHeaderError(
            f"{path}: header has unexpected column {found[len(expected)]!r} "
            f"(expected {','.join(expected)})")


def list_inputs(pattern: str, kind: str, columns: Sequence[str],
                first_index: int = 0) -> list[InputFile]:
    """Expands a path or glob, checks every file's header; fails at once if bad."""
    matched = FileSystems.match([pattern])[0].metadata_list
    if not matched:
        raise FileNotFoundError(f"--{kind} {pattern}: no such file")
    files = []
    for offset, meta in enumerate(sorted(matched, key=lambda m: m.path)):
        header, header_bytes = read_header(meta.path)
        check_header(meta.path, header, columns)
        compressed = compression_of(meta.path) != CompressionTypes.UNCOMPRESSED
        files.append(InputFile(
            index=first_index + offset, path=meta.path, kind=kind,
            size=meta.size_in_bytes,
            data_start=0 if compressed else header_bytes, compressed=compressed))
    return files


def has_data_lines(f: InputFile) -> bool:
    """Whether anything follows the header (a compressed file is peeked at, not read)."""
    if not f.compressed:
        return f.data_start < f.size
    _, header_bytes = read_header(f.path)
    with open_input(f.path) as stream:
        return len(stream.read(header_bytes + 1)) > header_bytes


def fingerprint(path: str) -> dict:
    """Size, modification time and md5 of the first and last MiB of the stored bytes."""
    meta = FileSystems.match([path])[0].metadata_list[0]
    digest = hashlib.md5()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        digest.update(f.read(_FINGERPRINT_BYTES))
        if meta.size_in_bytes > 2 * _FINGERPRINT_BYTES:
            f.seek(meta.size_in_bytes - _FINGERPRINT_BYTES)
        digest.update(f.read())  # the rest of a small file, else the last MiB
    return {"path": path, "size": meta.size_in_bytes,
            "mtime": meta.last_updated_in_seconds,
            "md5_first_last_mib": digest.hexdigest()}


def plan_ranges(files: Sequence[InputFile], range_bytes: int) -> list[ByteRange]:
    """Byte ranges covering every data line once."""
    ranges = []
    for f in files:
        if f.compressed:
            ranges.append(ByteRange(f.index, 0, -1))
            continue
        for start in range(f.data_start, f.size, range_bytes):
            ranges.append(ByteRange(f.index, start, min(start + range_bytes, f.size)))
    return ranges


def lines_before_ranges(counts: Sequence[tuple[ByteRange, int]],
                        ranges: Sequence[ByteRange]) -> dict:
    """Number of newlines (header included) before each range of its file.

    `counts` holds the newlines inside each range except each file's last range,
    whose count nobody needs.
    """
    count_of = {(r.file_index, r.start): n for r, n in counts}
    before, running = {}, {}
    for r in sorted(ranges):
        if r.end < 0:
            before[(r.file_index, r.start)] = 0
            continue
        lines = running.get(r.file_index, 1)  # the header's newline
        before[(r.file_index, r.start)] = lines
        running[r.file_index] = lines + count_of.get((r.file_index, r.start), 0)
    return before


def last_ranges(ranges: Sequence[ByteRange]) -> set:
    last = {}
    for r in ranges:
        last[r.file_index] = max(last.get(r.file_index, r), r)
    return set(last.values())


class CountRangeNewlines(beam.DoFn):
    """(range, newlines inside it) for every range but each file's last."""

    def __init__(self, files: Sequence[InputFile], skip: set):
        self._paths = {f.index: f.path for f in files}
        self._skip = skip

    def process(self, rng: ByteRange):
        if rng in self._skip or rng.end < 0:
            return
        newlines, left = 0, rng.end - rng.start
        with FileSystems.open(self._paths[rng.file_index],
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.seek(rng.start)
            while left > 0:
                block = f.read(min(_READ_BYTES, left))
                if not block:
                    break
                newlines += count_newlines(block)
                left -= len(block)
        yield rng, newlines


def _head(buf: bytearray, n: int) -> bytes:
    """bytes(buf[:n]) in one copy, not two."""
    with memoryview(buf) as view:
        return bytes(view[:n])


def iter_line_blocks(stream, begin: int, end: Optional[int],
                     chunk_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines read from `stream`, positioned at line start `begin`.

    Stops after the line holding byte end - 1 (at end of stream if end is None).
    """
    buf, pos = bytearray(), begin  # pos: offset of buf[0]
    while True:
        block = stream.read(chunk_bytes)
        buf += block
        if end is not None and pos + len(buf) >= end:
            cut = buf.find(b"\n", max(end - 1 - pos, 0))
            if cut >= 0:
                yield _head(buf, cut + 1)
                return
        if not block:
            if buf:
                yield bytes(buf)
            return
        if len(buf) >= chunk_bytes:
            cut = buf.rfind(b"\n")
            if cut >= 0:
                yield _head(buf, cut + 1)
                del buf[:cut + 1]
                pos += cut + 1


def _skip_to_line_start(stream, start: int) -> Optional[int]:
    """Seeks to the first line starting at or after `start`; None at end of file."""
    stream.seek(start - 1)
    pos = start - 1
    while True:
        block = stream.read(1 << 16)
        if not block:
            return None
        found = block.find(b"\n")
        if found >= 0:
            stream.seek(pos + found + 1)
            return pos + found + 1
        pos += len(block)


class ReadRangeChunks(beam.DoFn):
    """Reads a byte range as LineChunks of about `chunk_bytes`."""

    def __init__(self, files: Sequence[InputFile], chunk_bytes: int):
        self._files = {f.index: f for f in files}
        self._chunk_bytes = chunk_bytes

    def process(self, rng: ByteRange, lines_before: dict):
        f = self._files[rng.file_index]
        if rng.end < 0:
            with open_input(f.path) as stream:
                yield from self._chunks(stream, 0, None, f.index, 1, skip_header=True)
            return
        with FileSystems.open(f.path,
                              compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            begin = rng.start
            if rng.start > f.data_start:
                begin = _skip_to_line_start(stream, rng.start)
                if begin is None or begin >= rng.end:
                    return
            else:
                stream.seek(begin)
            skipped = 1 if begin > rng.start else 0  # the newline ending the line we skipped
            first_line = 1 + lines_before[(f.index, rng.start)] + skipped
            yield from self._chunks(stream, begin, rng.end, f.index, first_line)

    def _chunks(self, stream, begin, end, file_index, first_line, skip_header=False):
        for data in iter_line_blocks(stream, begin, end, self._chunk_bytes):
            if skip_header:
                cut = data.find(b"\n")
                data = data[cut + 1:] if cut >= 0 else b""
                first_line, skip_header = first_line + 1, False
            if data:
                yield LineChunk(file_index, first_line, data)
                first_line += count_newlines(data)


class ReadCsvChunks(beam.PTransform):
    """Every data line of the input files once, as LineChunks with line numbers."""

    def __init__(self, files: Sequence[InputFile], range_bytes: int, chunk_bytes: int):
        super().__init__()
        self._files = list(files)
        self._ranges = plan_ranges(self._files, range_bytes)
        self._chunk_bytes = chunk_bytes

    def expand(self, pbegin):
        ranges = pbegin | "PlanByteRanges" >> beam.Create(self._ranges)
        lines_before = (
            ranges
            | "CountNewlines" >> beam.ParDo(
                CountRangeNewlines(self._files, last_ranges(self._ranges)))
            | "CollectCounts" >> beam.combiners.ToList()
            | "LinesBeforeRanges" >> beam.Map(lines_before_ranges, self._ranges))
        return (
            ranges
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(
                ReadRangeChunks(self._files, self._chunk_bytes),
                beam.pvalue.AsSingleton(lines_before)))
