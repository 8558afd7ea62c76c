"""An input file's bytes as a stream, decompressed and checked to its end.

Beam's decompressing reader (`FileSystems.open`, apache_beam.io.filesystem.
CompressedFile) ends quietly where a truncated compressed file ends, so a
cut-off `.gz` looked like a shorter file and its lost rows were never counted;
and a corrupt one raised a bare `zlib.error` naming no file.  This reader uses
the same decompressors (same compression types, detected from the name, and
concatenated streams), but fails naming the file when the data stops before
the end-of-stream marker or does not decompress.
"""
from __future__ import annotations

import bz2
import lzma
import zlib
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_READ_BYTES = 1 << 22


class CorruptInputError(ValueError):
    """A compressed input that is truncated or does not decompress."""


def compression_of(path: str) -> str:
    """The CompressionTypes value Beam would use for `path` (from its name)."""
    return CompressionTypes.detect_compression_type(path)


def _decompressor(compression: str):
    if compression == CompressionTypes.GZIP:
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if compression == CompressionTypes.DEFLATE:
        return zlib.decompressobj()
    if compression == CompressionTypes.BZIP2:
        return bz2.BZ2Decompressor()
    if compression == CompressionTypes.LZMA:
        return lzma.LZMADecompressor()
    if compression == CompressionTypes.ZSTD:
        return zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()
    raise ValueError(f"unsupported compression {compression!r}")


class CheckedDecompressingReader:
    """`read(n)` of the decompressed bytes of a compressed file; raises
    CorruptInputError (naming the file) instead of ending early or with a bare
    decompressor error."""

    def __init__(self, path: str, compression: str):
        self.path, self._compression = path, compression
        self._raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        self._decompressor = _decompressor(compression)
        self._pending = bytearray()  # decompressed bytes not yet returned
        self._raw_read = 0         # compressed bytes consumed
        self._done = False

    def _fail(self, what: str) -> CorruptInputError:
        return CorruptInputError(
            f"{self.path}: {what} after {self._raw_read} bytes of the file: it is truncated "
            f"or corrupt. Copy it again; this job stopped (its output has no manifest).")

    def _fill(self, wanted: int) -> None:
        """Decompresses more input into _pending; sets _done at a checked end.
        Reads at most `wanted` compressed bytes (at least 64 KiB): a header
        read does not decompress megabytes."""
        d = self._decompressor
        if d.eof and d.unused_data:  # concatenated streams (e.g. cat a.gz b.gz)
            data, self._decompressor = d.unused_data, _decompressor(self._compression)
        else:
            data = self._raw.read(min(_READ_BYTES, max(wanted, 1 << 16)))
            self._raw_read += len(data)
            if not data:
                if not d.eof:
                    raise self._fail(f"{self._compression} data ends before its "
                                     f"end-of-stream marker")
                self._done = True
                return
        try:
            self._pending += self._decompressor.decompress(data)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as err:
            raise self._fail(f"{self._compression} data does not decompress ({err})") from None

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._pending) < size):
            self._fill(_READ_BYTES if size < 0 else size - len(self._pending))
        if size < 0:
            size = len(self._pending)
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "CheckedDecompressingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_input(path: str):
    """A stream of the decompressed bytes of `path` (compression from its name)."""
    compression = compression_of(path)
    if compression == CompressionTypes.UNCOMPRESSED:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return CheckedDecompressingReader(path, compression)
