"""What the `trainer` and `tuning` command lines print, besides their results.

Our own progress (loggers `trainer.*` and `tuning.*`) at INFO; other libraries at
WARNING; TensorFlow's C++ logging at errors (TF_CPP_MIN_LOG_LEVEL=2: its warnings are
notes for TensorFlow's developers, e.g. "Local rendezvous is aborting" before every
error a tf.data pipeline raises, which the command reports itself).  That
setting does not reach the lines TensorFlow's native libraries write while they load
(absl's "before absl::InitializeLog()" notices, oneDNN and CPU-feature notes, "Could
not find cuda drivers", "failed call to cuInit" on a machine without a GPU), so
TensorFlow is imported and its GPUs listed with the process's stderr captured, and
only what is not such a notice is passed on.  `--verbose` shows everything, as
TensorFlow and the libraries would print it.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile

OUR_LOGGERS = ("trainer", "tuning")
# A line of absl's native logging, severity first: "I0000 00:00:17.3  123 file.cc:31] ...".
_NATIVE_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"


def verbose_option() -> argparse.ArgumentParser:
    """The `--verbose` option, as a parent parser of each subcommand."""
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parent.add_argument("--verbose", action="store_true",
                        help="show tracebacks of user errors and every library's log "
                             "(TensorFlow's start-up included). Default: off")
    return parent


def start(verbose: bool) -> None:
    """Sets up logging; TensorFlow is imported later (import_tensorflow), once the
    command has done what must not wait for it (a writer claim, a gs:// check)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow: quietly (see the module docstring) unless `verbose`."""
    if not verbose:
        import_tensorflow_quietly()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (once per process) and lists its GPUs with the process's
    stderr captured, then passes on what is not a start-up notice: real errors still
    show, and a failing import still raises, after stderr is back."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    gpus = []
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(without_start_up_notices(
                captured.read().decode(errors="replace"), gpu_found=bool(gpus)))


def without_start_up_notices(text: str, gpu_found: bool) -> str:
    """`text` (stderr while TensorFlow loads) without its native INFO and WARNING lines
    (with their continuation lines), absl's banner, and, when no GPU was found, the
    "failed call to cuInit" error that says so."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        native = _NATIVE_LINE.match(line)
        if line.startswith(_ABSL_BANNER):
            dropping = True
        elif native:  # a line that does not start a message continues the one before
            dropping = (native.group(1) in "IW"
                        or (not gpu_found and "failed call to cuInit" in line))
        if not dropping:
            kept.append(line)
    return "".join(kept)
