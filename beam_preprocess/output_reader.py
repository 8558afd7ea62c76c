"""Reads a finished output back (tests, benchmarks, checks) through Beam's FileSystems.

Works for local and gs:// outputs alike (TensorFlow's own GCS client is not used,
so the tests' GCS emulator serves these reads too).
"""
from __future__ import annotations

import struct
from typing import Iterator, Optional

from apache_beam.io.filesystems import FileSystems

from beam_preprocess.manifest import manifest_path, read_json
from trainer.records import spec as record_spec

_READ_BYTES = 1 << 22


def read_manifest(output: str) -> dict:
    manifest = read_json(manifest_path(output))
    record_spec.check_manifest(manifest, manifest_path(output))
    return manifest


def iter_tfrecords(path: str) -> Iterator[bytes]:
    """Records of a (GZIP) TFRecord file; length and data CRCs are not checked.

    Read in a loop: one read() of Beam's decompressing file returns at most
    16 MiB, so a single read would silently cut larger shards short.
    """
    with FileSystems.open(path) as f:  # .gz is decompressed
        data = b"".join(iter(lambda: f.read(_READ_BYTES), b""))
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12  # length (8) + its masked crc32c (4)
        if start + length + 4 > len(data):
            raise ValueError(f"{path}: record at byte {pos} is cut off")
        yield data[start:start + length]
        pos = start + length + 4  # data + its masked crc32c


def read_split_bytes(output: str, split: str, manifest: Optional[dict] = None) -> list[bytes]:
    manifest = manifest or read_manifest(output)
    return [record for name in manifest["splits"][split]["shards"]
            for record in iter_tfrecords(f"{output.rstrip('/')}/{name}")]


def read_split(output: str, split: str, manifest: Optional[dict] = None) -> list[record_spec.Segment]:
    """Every record of a split, decoded, in a stable order (session, block, time)."""
    segments = [record_spec.decode_segment(r) for r in read_split_bytes(output, split, manifest)]
    return sorted(segments, key=lambda s: (s.crew, s.experiment, s.seat, float(s.time[0])))
