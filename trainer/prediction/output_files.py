"""predict's output files: checked before the work, replaced only when predict wrote
them, written whole.

An existing --out or --plot is replaced only with `overwrite` and only if it is a
submission or PNG (what predict writes), never when it is one of the command's
inputs; each is written to a temporary file beside it and renamed into place, so a
failed predict leaves no half file.
"""
from __future__ import annotations

import logging
import os
import posixpath
import uuid
from typing import Callable

import tensorflow as tf

from trainer.records import spec
from trainer.shared.errors import UserError
from trainer.shared.paths import normal_path

log = logging.getLogger(__name__)

SUBMISSION_HEADER = "id," + ",".join(spec.CLASSES)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _folder(path: str) -> str:
    return posixpath.dirname(path) if "://" in path else os.path.dirname(os.path.abspath(path))


def check_outputs(outputs: dict[str, str], inputs: dict[str, str], overwrite: bool,
                  plot_is_default: bool = False) -> None:
    """Refuses, before any work, an output (option -> path) that is an input (path ->
    what it is) or another output, is a folder, sits in a missing or unwritable local
    folder, or exists and may not be replaced (no `overwrite`, or not one that predict
    wrote: a submission for --out, a PNG for --plot)."""
    resolved_inputs = {normal_path(path): what for path, what in inputs.items()}
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        name = (f"{option} {path}" + (" (the default, beside --out)"
                                      if option == "--plot" and plot_is_default else ""))
        resolved = normal_path(path)
        if resolved in resolved_inputs:
            raise UserError(f"{name} is {resolved_inputs[resolved]}, an input of this "
                            f"command: write to another file")
        if resolved in seen:
            raise UserError(f"{name} is the same file as {seen[resolved]}: give another "
                            f"{option}")
        seen[resolved] = option
        if tf.io.gfile.isdir(path):
            raise UserError(f"{name} is a folder: give a file name")
        if tf.io.gfile.exists(path):
            if not overwrite:
                raise UserError(f"{name} exists: give --overwrite to replace it, or "
                                f"another {option}")
            if not _written_by_predict(path, option):
                kind = "a submission (id,A,B,C,D)" if option == "--out" else "a PNG"
                raise UserError(f"{name} is not {kind}, so it is not replaced even with "
                                f"--overwrite: move it away or give another {option}")
            continue
        if "://" in path:
            continue  # object stores have no folders to create
        folder = _folder(path)
        if not os.path.isdir(folder):
            raise UserError(f"{name}: folder {folder} does not exist; create it or give "
                            f"another {option}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{name}: folder {folder} is not writable; give another {option}")


def _written_by_predict(path: str, option: str) -> bool:
    """Whether an existing file is what predict writes for `option`: a CSV whose first
    line is the submission header, or a PNG."""
    with tf.io.gfile.GFile(path, "rb") as f:
        start = f.read(len(SUBMISSION_HEADER) + 2)
    if option == "--plot":
        return start.startswith(PNG_SIGNATURE)
    return (start.startswith(SUBMISSION_HEADER.encode())
            and start[len(SUBMISSION_HEADER):][:1] in (b"\n", b"\r"))


def write_atomically(path: str, option: str, overwrite: bool,
                     write: Callable[[str], None]) -> None:
    """Calls `write` with a temporary path beside `path`, then renames the file into
    place: a failure leaves no half file (the temporary one is removed).  Without
    `overwrite`, a file that appeared at `path` meanwhile is not replaced."""
    if "://" in path:
        folder, name = posixpath.split(path)
        tmp = posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    else:
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    appeared = UserError(f"{option} {path} appeared while predicting: give --overwrite to "
                         f"replace it, or another {option}")
    try:
        write(tmp)
        if "://" in path:
            try:
                tf.io.gfile.rename(tmp, path, overwrite=overwrite)
            except tf.errors.AlreadyExistsError:
                raise appeared from None
        elif overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and never replaces a file
            except FileExistsError:
                raise appeared from None
            except OSError:  # a file system without hard links
                if os.path.lexists(path):
                    raise appeared from None
                os.replace(tmp, path)
    finally:
        try:
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)
        except (OSError, tf.errors.OpError):
            log.warning("could not remove the temporary file %s", tmp)
