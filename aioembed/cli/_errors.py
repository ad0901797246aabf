"""The command line's own failures: printed as one line, never as a traceback."""

from __future__ import annotations

__all__ = ["CliError", "UsageError"]


class CliError(Exception):
    """A command cannot go on; ``exit_code`` 1."""

    exit_code = 1


class UsageError(CliError):
    """Bad arguments or settings, found before any work started; ``exit_code`` 2."""

    exit_code = 2
