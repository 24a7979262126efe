"""User-facing errors.

Everything the user can cause (a bad file, a wrong name, a foreign checkpoint) raises
:class:`RnnkitError` with a one-line message that says what went wrong and where. The command line
prints that line on stderr and exits with code 2; library users catch the exception.
"""

from __future__ import annotations

import os


class RnnkitError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    exit_code = 2


def at(path: str | os.PathLike, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``) for error messages."""
    return f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)
