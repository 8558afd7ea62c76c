"""`tf.train.Example` serialized in plain Python: no TensorFlow, no protobuf package.

The messages (tensorflow/core/example/example.proto and feature.proto, proto3):

    message Example   { Features features = 1; }
    message Features  { map<string, Feature> feature = 1; }
    message Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                                     Int64List int64_list = 3; } }
    message BytesList { repeated bytes value = 1; }
    message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }

On the wire every message here is a length-delimited field (tag, length, payload);
a map entry is a message with the key as field 1 and the value as field 2; a packed
list is one field holding the values back to back (int64 as varints, negatives in
ten bytes; float as 4 little-endian bytes) and is left out when empty; a bytes list
holds one field per value.  The bytes are those of TensorFlow's
`Example.SerializeToString(deterministic=True)` (tests/test_record_encoding.py
compares them): map entries in the order of `_upb_key_order`, which is what makes
them the same in every process.

Each message is built as a list of byte pieces and joined once, so a large value
(a segment's signals) is copied once, not once per level of nesting.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

_LEN = 2  # wire type of a length-delimited field
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_UINT64 = (1 << 64) - 1

# Field numbers.
_EXAMPLE_FEATURES = 1
_FEATURES_MAP = 1
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_BYTES_LIST, _FLOAT_LIST, _INT64_LIST = 1, 2, 3   # Feature.kind
_LIST_VALUE = 1


class Feature:
    """One serialized tf.train.Feature (as pieces); make it with bytes_feature,
    float_feature or int64_feature."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, pieces: list) -> list:
    """A length-delimited field holding `pieces` (bytes-like), as pieces."""
    size = sum(memoryview(p).nbytes for p in pieces)
    return [_varint(number << 3 | _LEN) + _varint(size), *pieces]


def _int64(value) -> int:
    value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"int64 feature value {value} out of range")
    return value & _UINT64  # two's complement: a negative value takes ten bytes


def bytes_feature(values: Iterable[bytes]) -> Feature:
    """A Feature with a bytes_list (values: bytes-like; an empty one is kept)."""
    pieces = []
    for value in values:
        pieces += _field(_LIST_VALUE, [value])
    return Feature(_field(_BYTES_LIST, pieces))


def int64_feature(values: Iterable[int]) -> Feature:
    """A Feature with an int64_list (packed; empty if there are no values)."""
    packed = b"".join(_varint(_int64(v)) for v in values)
    return Feature(_field(_INT64_LIST, _field(_LIST_VALUE, [packed]) if packed else []))


def float_feature(values: Iterable[float]) -> Feature:
    """A Feature with a float_list (packed float32, rounded as a C cast does)."""
    packed = np.asarray(list(values), dtype="<f4").tobytes()
    return Feature(_field(_FLOAT_LIST, _field(_LIST_VALUE, [packed]) if packed else []))


def _upb_key_order(key: str) -> list[int]:
    """The deterministic map order of protobuf's Python backend (upb, protobuf >= 4.21,
    what TensorFlow 2.21 uses): keys compared as UTF-8 bytes, except that a key comes
    *after* the longer keys it is a prefix of ("ab", "a", "b"; C++ protobuf puts "a"
    first).  Record keys (records.spec) are no prefix of one another: there both agree."""
    return [*key.encode(), 256]  # 256: past every byte, so a prefix sorts last


def encode_example(features: Mapping[str, Feature]) -> bytes:
    """The serialized tf.train.Example with these features, map entries in upb's
    deterministic order (_upb_key_order)."""
    entries = []
    for key in sorted(features, key=_upb_key_order):
        entry = _field(_ENTRY_KEY, [key.encode()]) + _field(_ENTRY_VALUE, features[key].pieces)
        entries += _field(_FEATURES_MAP, entry)
    return b"".join(_field(_EXAMPLE_FEATURES, entries))
