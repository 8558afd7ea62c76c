"""User errors: problems the person running a command can fix, told in a line or two.

A missing or incomplete data directory, a run that does not exist, a truncated shard,
a bad option or config value: the code that finds the problem raises UserError (or a
subclass) with a message that names the file, option or key and says what to do.
Each command line's main runs its command through `exit_on_user_error`, which prints
that message instead of a traceback.  Anything else is a bug and keeps its traceback.

The exit status is 2 (a bad input, as argparse's) unless the error's class says
otherwise: a run that failed on the way (DivergedError: its loss became NaN) exits with 1.
"""
from __future__ import annotations

import sys
from typing import Callable


class UserError(ValueError):
    """A problem with the command's input that its user can fix; the message says how.

    A ValueError: a bad path, option or data is a bad value given to the command."""

    exit_status = 2  # of the command line that prints it (exit_on_user_error)


class DivergedError(UserError):
    """Training diverged: a loss (or the weights) became NaN or infinite at a step.

    `quantity` says what ("the training loss", "the validation loss", "the model's
    weights"), `value` is the non-finite value (nan, inf or -inf); `step` is the global
    step (1-based) and `epoch` its epoch (1-based).  The message starts with "<quantity>
    became <value> at step <step> (epoch <epoch>)"; the trainer adds what it kept."""

    exit_status = 1  # the input was valid; the run failed

    def __init__(self, quantity: str, value: float, step: int, epoch: int,
                 consequence: str = ""):
        value = float(value)
        self.quantity, self.value, self.step, self.epoch = quantity, value, step, epoch
        self.what = f"{quantity} became {value} at step {step} (epoch {epoch})"
        super().__init__(self.what + (f"; {consequence}" if consequence else ""))

    def with_consequence(self, consequence: str) -> "DivergedError":
        """The same error, its message followed by `consequence` (what the run kept,
        what to do)."""
        return DivergedError(self.quantity, self.value, self.step, self.epoch, consequence)


def exit_on_user_error(prog: str, verbose: bool, command: Callable[[], int]) -> int:
    """Runs `command`; a UserError ends it with `prog: error: <message>` and its
    `exit_status` (2, or 1 for a run that failed on the way: DivergedError).

    With `verbose` the error propagates, traceback and all.
    """
    try:
        return command()
    except UserError as err:
        if verbose:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_status
