"""Comparing local and gs:// paths: whether two name the same file, whether a folder
holds a path (no TensorFlow, no Beam: the Beam job, the trainer and the tuner use it to
refuse writing over their own inputs)."""
from __future__ import annotations

import os
import posixpath


def normal_path(path: str) -> str:
    """A path to compare: local paths resolved (symlinks, `..`, relative to the working
    directory), URLs (gs://) with `.`, `..`, repeated and trailing slashes removed."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath(rest)}"
    return os.path.realpath(path)


def same_file(a: str, b: str) -> bool:
    return normal_path(a) == normal_path(b)


def holds(directory: str, path: str) -> bool:
    """Whether `path` is `directory` or lies under it."""
    return (normal_path(path) + "/").startswith(normal_path(directory) + "/")
