"""Progress lines of the job's stages: '<Stage>: <n> <what> (<s> s[, <p>% of the input])'.

Each stage adds its counts as it works; a line is logged (logger
`beam_preprocess.progress`, INFO) when a stage first reports and then at most
every `INTERVAL_SECONDS`; `totals()` gives each stage's final line after a
local run.  Counts are per process: on the local runner (one
process) they are the job's, on Dataflow each worker logs its own share in its
worker log.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

INTERVAL_SECONDS = 5.0
LOGGER = logging.getLogger("beam_preprocess.progress")

_lock = threading.Lock()
_stages: dict[str, dict] = {}


def add(stage: str, count: int, what: str, done_bytes: int = 0,
        total_bytes: Optional[int] = None) -> None:
    """Adds `count` items (and `done_bytes` of `total_bytes` input) to `stage`."""
    now = time.monotonic()
    with _lock:
        state = _stages.setdefault(stage, {"count": 0, "bytes": 0, "start": now,
                                           "logged": None, "what": what})
        state["count"] += count
        state["bytes"] += done_bytes
        state["last"] = now
        if state["logged"] is not None and now - state["logged"] < INTERVAL_SECONDS:
            return
        state["logged"] = now
        line = f"{stage}: {state['count']:,} {what} ({now - state['start']:.0f} s"
        if total_bytes:
            line += f", {min(1.0, state['bytes'] / total_bytes):.0%} of the input"
    LOGGER.info(line + ")")


def totals() -> list[str]:
    """'<Stage>: <n> <what> in <s> s' per stage that reported in this process."""
    with _lock:
        return [f"{stage}: {s['count']:,} {s['what']} in {s['last'] - s['start']:.1f} s"
                for stage, s in _stages.items()]


def reset() -> None:
    """Forgets all counts (a new job in the same process)."""
    with _lock:
        _stages.clear()
