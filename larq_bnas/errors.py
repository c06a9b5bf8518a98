"""Errors for bad input, and how the command line tells them from failed jobs.

``InputError`` marks an error the user can fix by changing an argument: a file that is
missing, truncated or of the wrong kind, a value outside its range, options that do not
match a run being resumed. The command line shows it as one line and exits with code 2.
Any other exception is a failed job (exit code 1). Imports no TensorFlow.
"""

from __future__ import annotations


class InputError(ValueError):
    """A bad argument: the message names the bad value and what would be valid."""


class OptionsMismatch(InputError):
    """A resumed job was given options that change its results.

    ``differences`` maps each option to ``(recorded, given)``.
    """

    def __init__(self, message: str, differences: dict[str, tuple[object, object]]) -> None:
        super().__init__(message)
        self.differences = differences


class UntrustedModelError(InputError):
    """A model file carries code (a Lambda layer, ...) and code was not trusted."""
