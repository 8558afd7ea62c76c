"""User errors: problems the person running a command can fix, told in a line or two.

A missing or incomplete data directory, a run that does not exist, a truncated shard,
a bad option or config value: the code that finds the problem raises UserError (or a
subclass) with a message that names the file, option or key and says what to do.
Each command line's main runs its command through `exit_on_user_error`, which prints
that message instead of a traceback.  Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Callable


class UserError(ValueError):
    """A problem with the command's input that its user can fix; the message says how.

    A ValueError: a bad path, option or data is a bad value given to the command."""


def exit_on_user_error(prog: str, verbose: bool, command: Callable[[], int]) -> int:
    """Runs `command`; a UserError ends it with `prog: error: <message>` and status 2.

    With `verbose` the error propagates, traceback and all.
    """
    try:
        return command()
    except UserError as err:
        if verbose:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
