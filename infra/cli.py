"""`python -m infra COMMAND --config FILE [--run-id ID] [--dry-run]`."""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Optional, Sequence

from infra.config import ConfigError, load_config, placeholders
from infra.plans import DESCRIPTIONS, plan_commands
from infra.resources import check_run_id, new_run_id
from infra.runner import run_commands


def _run_id(text: str) -> str:
    try:
        return check_run_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    options.add_argument("--config", required=True, metavar="FILE",
                         help="the TOML configuration file, a filled-in copy of "
                              "infra/cloud.toml (required)")
    options.add_argument("--run-id", type=_run_id, default=None, metavar="ID",
                         help="names the run's VMs, jobs and output dirs. Default: the UTC "
                              "time, e.g. 20250131-235959")
    options.add_argument("--dry-run", action="store_true",
                         help="print the commands, one per line, without running them. "
                              "Default: run them")
    parser = argparse.ArgumentParser(
        prog="python -m infra", allow_abbrev=False,
        description="Launch pilotstate on Google Cloud.  Every command reads one "
                    "configuration file (see infra/cloud.toml); "
                    "`python -m infra COMMAND --help` shows its options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     title="commands")
    for name, text in DESCRIPTIONS.items():
        commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                            parents=[options], allow_abbrev=False)
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    left = placeholders(config)
    if left:
        print(f"warning: {args.config} still holds the template's placeholders ("
              + ", ".join(left) + "): put in your own values before running for real",
              file=sys.stderr)
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
