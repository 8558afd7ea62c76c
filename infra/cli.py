"""`python -m infra COMMAND --config FILE [--run-id ID] [--dry-run]`."""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Optional, Sequence

from infra.config import ConfigError, load_config
from infra.plans import DESCRIPTIONS, plan_commands
from infra.resources import check_run_id, new_run_id
from infra.runner import run_commands


def _run_id(text: str) -> str:
    try:
        return check_run_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra",
        description="Launch pilotstate on Google Cloud.  Every command reads one "
                    "configuration file (see infra/cloud.toml).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<11} {text}"
                                         for name, text in DESCRIPTIONS.items()))
    parser.add_argument("command", choices=sorted(DESCRIPTIONS), metavar="COMMAND",
                        help="what to launch (listed below)")
    parser.add_argument("--config", required=True, help="the TOML configuration file")
    parser.add_argument("--run-id", type=_run_id, default=None,
                        help="names the run's VMs, jobs and output dirs "
                             "(default: the UTC time, e.g. 20250131-235959)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the commands, one per line, without running them")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    commands = plan_commands(args.command, config, args.run_id or new_run_id())
    try:
        run_commands(commands, args.dry_run, sys.stdout)
    except subprocess.CalledProcessError as error:
        print(f"error: exit status {error.returncode}: {error.cmd[0]}", file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(f"error: {error.filename}: not installed or not on PATH", file=sys.stderr)
        return 1
    return 0
