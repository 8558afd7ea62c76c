"""Print or run a list of commands."""
from __future__ import annotations

import shlex
import subprocess
from typing import TextIO

from infra.resources import Argv


def run_commands(commands: list[Argv], dry_run: bool, out: TextIO) -> None:
    """Print each command shell-quoted, one per line; unless `dry_run`, run it too.

    Runs stop at the first command that fails (CalledProcessError).
    """
    for argv in commands:
        print(("" if dry_run else "+ ") + shlex.join(argv), file=out, flush=True)
        if not dry_run:
            subprocess.run(argv, check=True)
