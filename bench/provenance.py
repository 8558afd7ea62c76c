"""Where a benchmark figure came from: machine, date, commit and command.

Every bench script that writes JSON (`--json FILE`) puts `stamp(argv)` under the
key "provenance", so a figure published in README.md or docs/ (rendered by
bench/render_tables.py from bench/results/*.json) says on what, when and how it
was measured.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str:
    """git's answer in the repository, or "" where there is no git (the trainer image)."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine() -> str:
    """'2 cores, 24 GiB, no GPU' (GPUs as nvidia-smi names them, when it answers)."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    gpus = "no GPU"
    if shutil.which("nvidia-smi"):
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True).stdout.split("\n")
        names = [name.strip() for name in names if name.strip()]
        if names:
            gpus = f"{len(names)} x {names[0]}"
    return f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {gpus}"


def stamp(script: str, args: Optional[Sequence[str]] = None) -> dict:
    """The provenance of a result that `script` (a path) run with `args` (by default
    this process's command-line arguments) is about to write."""
    args = sys.argv[1:] if args is None else args
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    # The trainer image has no .git; its build records the revision in PILOTSTATE_GIT_REVISION.
    commit = commit or os.environ.get("PILOTSTATE_GIT_REVISION", "")[:7]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "commit": commit or "unknown",
        "command": "python " + shlex.join([os.path.relpath(os.path.abspath(script), REPO), *args]),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def publish(result: dict, json_path: Optional[str], script: str,
            args: Optional[Sequence[str]] = None) -> dict:
    """Adds "provenance" (see `stamp`) to a bench script's result, writes it to
    `json_path` (if given) and prints it; returns the stamped result."""
    stamped = {**result, "provenance": stamp(script, args)}
    text = json.dumps(stamped, indent=2, sort_keys=True)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text + "\n")
    print(text)
    return stamped
