"""Measuring a command the way the benchmarks report it: wall time, peak RSS, CPU time.

Peak memory is the sum of the RSS of the child and all its descendants, sampled
with psutil every 50 ms (pages shared between processes are counted once per
process, so with several worker processes this overstates a little).
"""
from __future__ import annotations

import dataclasses
import resource
import shlex
import subprocess
import tempfile
import time
from typing import Optional, Sequence

import psutil

SAMPLE_SECONDS = 0.05


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and its children, in bytes (0 once it is gone)."""
    try:
        members = [process] + process.children(recursive=True)
        return sum(member.memory_info().rss for member in members)
    except psutil.Error:
        return 0


@dataclasses.dataclass
class Measurement:
    """What one run of a command took."""

    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float    # user + system of the child and the descendants it waited for
    returncode: int
    stdout: str
    stderr: str

    @property
    def peak_rss_mb(self) -> float:
        return round(self.peak_rss_bytes / 1024 ** 2, 1)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(command: Sequence[str], env: Optional[dict] = None) -> Measurement:
    """Runs `command` to completion, sampling its process tree's RSS.

    Output goes to temporary files, not pipes, so a chatty child cannot block.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cpu_before = _children_cpu_seconds()
        started = time.perf_counter()
        child = subprocess.Popen(list(command), stdout=out, stderr=err, text=True, env=env)
        watched = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - started
        cpu = _children_cpu_seconds() - cpu_before
        out.seek(0)
        err.seek(0)
        return Measurement(seconds, peak, cpu, child.returncode, out.read(), err.read())


def measure_checked(command: Sequence[str], what: str) -> Measurement:
    """`measure`, ending the benchmark with a message naming `what`, the command and the
    end of its stderr when the command fails."""
    run = measure(command)
    if run.returncode:
        raise SystemExit(f"{what} failed (exit {run.returncode}): {shlex.join(command)}\n"
                         + run.stderr[-3000:])
    return run
