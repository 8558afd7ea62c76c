"""What the job prints on the console: progress and warnings, not library chatter.

Without --verbose: Python logging at WARNING except our own progress lines, and a
step failure that `main` reports in one line (bad input, failed row accounting) is
not also logged by Beam with a traceback.  (The job does not import TensorFlow, so
there are no TensorFlow start-up lines to hide: trainer/records/example_proto.py encodes.)
"""
from __future__ import annotations

import logging
import sys

_BEAM_STEP_LOGGER = "apache_beam.runners.common"  # logs every failing step's traceback


class _ConsoleHandler(logging.StreamHandler):
    """Our progress and warning lines on stderr."""


class _DropReportedErrors(logging.Filter):
    def __init__(self, reported: tuple[type[BaseException], ...]):
        super().__init__()
        self._reported = reported

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, self._reported)


def configure_logging(verbose: bool, reported: tuple[type[BaseException], ...]) -> None:
    """Logging for a command-line run; `reported`: the exceptions main prints itself."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ours = logging.getLogger("beam_preprocess")
    ours.setLevel(logging.INFO)
    ours.propagate = False
    handler = _ConsoleHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for old in [h for h in ours.handlers if isinstance(h, _ConsoleHandler)]:
        ours.removeHandler(old)  # main may run more than once in a process (tests)
    ours.addHandler(handler)
    beam_steps = logging.getLogger(_BEAM_STEP_LOGGER)
    for old in [f for f in beam_steps.filters if isinstance(f, _DropReportedErrors)]:
        beam_steps.removeFilter(old)
    if not verbose:
        beam_steps.addFilter(_DropReportedErrors(reported))
