"""Where a local beam_preprocess run holds its memory: peak RSS per FnApiRunner stage.

Runs the job in this process (FnApiRunner, in-process worker) with a thread that
samples the resident memory every 20 ms, and attributes each sample to the fused
stage the runner is executing (its "Running bundle for stage" debug message).
Prints one line per bundle: stage name, RSS when it started, its peak, RSS when
the next one started, wall seconds; then the whole run's peak.

    python bench/memory_by_stage.py -- --test test.csv --stats m.json --output out --overwrite
"""
from __future__ import annotations

import logging
import re
import os
import sys
import threading
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from beam_preprocess.__main__ import run  # noqa: E402

SAMPLE_SECONDS = 0.02
_STAGE_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle"


def _short_name(stage: str) -> str:
    """The user-named transforms of a fused stage, e.g. 'ReadTest/ParseChunks+KeyTest...'."""
    names = re.findall(r"ref_AppliedPTransform_([A-Za-z]+)-?([A-Za-z]*)", stage)
    names += [(m, "") for m in re.findall(r"\(([A-Z][A-Za-z]+)/", stage)]
    seen = dict.fromkeys(f"{a}/{b}" if b else a for a, b in names)
    return "+".join(seen) or stage


class StageTimeline(logging.Handler):
    """Collects (stage, start RSS, peak RSS, end RSS, seconds) per bundle run."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.process = psutil.Process()
        self.rows: list[list] = []
        self.peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Running bundle for stage"):
            return
        name = _short_name(message.split("\n")[0].split("stage ", 1)[-1])
        rss = self.process.memory_info().rss
        with self._lock:
            if self.rows:
                self.rows[-1][3] = rss
                self.rows[-1][4] = time.perf_counter() - self.rows[-1][4]
            self.rows.append([name, rss, rss, None, time.perf_counter()])

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = self.process.memory_info().rss
            with self._lock:
                self.peak = max(self.peak, rss)
                if self.rows:
                    self.rows[-1][2] = max(self.rows[-1][2], rss)
            time.sleep(SAMPLE_SECONDS)

    def __enter__(self):
        logger = logging.getLogger(_STAGE_LOGGER)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(self)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        logging.getLogger(_STAGE_LOGGER).removeHandler(self)
        if self.rows and self.rows[-1][3] is None:
            self.rows[-1][3] = self.process.memory_info().rss
            self.rows[-1][4] = time.perf_counter() - self.rows[-1][4]


def main(argv: list[str]) -> int:
    mb = 1024 ** 2
    started = time.perf_counter()
    with StageTimeline() as timeline:
        run(argv)
    print(f"{'stage':70s} {'start MB':>9s} {'peak MB':>9s} {'end MB':>9s} {'s':>7s}")
    for name, start, peak, end, seconds in timeline.rows:
        print(f"{name[:70]:70s} {start / mb:9.0f} {peak / mb:9.0f} {end / mb:9.0f} {seconds:7.1f}")
    print(f"whole run: peak {timeline.peak / mb:.0f} MB, {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[1:] if args[:1] == ["--"] else args))
