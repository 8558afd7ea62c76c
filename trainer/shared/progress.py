"""A progress line for long work (training, prediction): windows done, windows/s, ETA.

On a terminal the line is rewritten in place; otherwise (a log file, a pipe) a
plain line is written every `interval` seconds.  It goes to stderr, beside the
logs: stdout holds the commands' JSON results.  (keras.utils.Progbar writes to
stdout, and counts steps, not windows.)
"""
from __future__ import annotations

import datetime
import sys
import time
from typing import Optional, TextIO

TERMINAL_REFRESH_SECONDS = 0.5
LOG_INTERVAL_SECONDS = 30.0
_CLEAR_LINE = "\r\x1b[K"


class Progress:
    """`what`: "training", "predicting"; `total`: the windows to do; `interval`: seconds
    between lines (default: TERMINAL_REFRESH_SECONDS on a terminal, else
    LOG_INTERVAL_SECONDS)."""

    def __init__(self, what: str, total: int, stream: Optional[TextIO] = None,
                 interval: Optional[float] = None):
        self.what = what
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        if interval is None:
            interval = TERMINAL_REFRESH_SECONDS if self.terminal else LOG_INTERVAL_SECONDS
        self.interval = interval
        self.started = self.shown = time.monotonic()

    def line(self) -> str:
        """e.g. "training: 1280/8000 windows (16%), 412 windows/s, ETA 0:00:16"."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        eta = datetime.timedelta(seconds=round(left / rate)) if rate > 0 else "?"
        return (f"{self.what}: {self.done}/{self.total} windows "
                f"({min(self.done / self.total, 1.0):.0%}), {rate:.0f} windows/s, ETA {eta}")

    def advance(self, windows: int) -> None:
        """Counts `windows` more done; shows the line if it is due."""
        self.done += windows
        now = time.monotonic()
        if now - self.shown >= self.interval:
            self.shown = now
            self._show()

    def clear(self) -> None:
        """Removes the line from a terminal, so that a log line can take its place
        (the next `advance` shows it again)."""
        if self.terminal:
            self.stream.write(_CLEAR_LINE)
            self.stream.flush()

    def close(self) -> None:
        """Leaves the final line on a terminal (a line of its own)."""
        if self.terminal:
            self._show()
            self.stream.write("\n")
            self.stream.flush()

    def _show(self) -> None:
        if self.terminal:
            self.stream.write(_CLEAR_LINE + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
