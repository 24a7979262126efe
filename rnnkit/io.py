"""File helpers shared by every command: atomic writes and line reading with located errors.

Writes go to a temporary file in the destination's folder and are renamed over the target only
once complete, so an interrupted run never leaves a half-written file behind. Text input is read
as bytes split on ``\\n`` only, so a decoding error can name its file and line exactly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rnnkit.errors import RnnkitError, at
from rnnkit.reporting import get_reporter


def apply_umask(path: str | os.PathLike, mode: int = 0o666) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would (``mode`` minus the umask).

    ``tempfile`` creates files 0600 and folders 0700; renamed into place they would stay private.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` when the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            apply_umask(tmp)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_readable(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, or raise a one-line error if it is missing or unreadable."""
    p = Path(path)
    if not p.exists():
        raise RnnkitError(f"{p}: no such file")
    if p.is_dir():
        raise RnnkitError(f"{p}: is a directory, expected a file")
    if not os.access(p, os.R_OK):
        raise RnnkitError(f"{p}: permission denied")
    return p


def decode_line(raw: bytes, path: str | os.PathLike, lineno: int, errors: str = "strict") -> str:
    """Decode one raw line (without its ``\\n``) as UTF-8, naming ``path:lineno`` on failure.

    ``errors``: ``strict`` raises, ``replace`` puts U+FFFD in silently, ``warn`` replaces with a
    warning on the reporter.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if errors == "replace":
            return raw.decode("utf-8", errors="replace")
        if errors == "warn":
            get_reporter().warning(f"{at(path, lineno)}: invalid UTF-8 at byte {e.start}; replaced")
            return raw.decode("utf-8", errors="replace")
        raise RnnkitError(
            f"{at(path, lineno)}: invalid UTF-8 at byte {e.start} of the line "
            "(fix the file or pass --encoding-errors replace)"
        ) from None


def strip_eol(raw: bytes) -> bytes:
    """A raw line without its ``\\n`` (and a ``\\r`` before it), as text mode would give it."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    return raw


def stream_lines(stream: IO[bytes], name: str, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for each line of a binary stream, one ``readline`` at a time:
    nothing past the current line is waited for, so an interactive stdin is answered line by
    line."""
    lineno = 0
    while raw := stream.readline():
        lineno += 1
        yield lineno, decode_line(strip_eol(raw), name, lineno, errors)


def read_lines(
    path: str | os.PathLike,
    errors: str = "strict",
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of ``path`` without its line terminator.

    Lines are split on ``\\n`` only (a ``\\r`` before it is dropped, as text mode would). ``start``
    and ``end`` are byte offsets that must fall on line starts; a caller reading a chunk passes the
    number of the chunk's first line as ``first_line`` so errors still name the right line.
    """
    check_readable(path)
    with open(path, "rb") as f:
        f.seek(start)
        lineno = first_line - 1
        pos = start
        for raw in f:
            if end is not None and pos >= end:
                break
            pos += len(raw)
            lineno += 1
            yield lineno, decode_line(strip_eol(raw), path, lineno, errors)


def count_lines(path: str | os.PathLike, end: int | None = None) -> int:
    """Lines in ``path`` (up to byte offset ``end``), counting a final unterminated one."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        remaining = end
        while True:
            size = 1 << 20 if remaining is None else min(1 << 20, remaining)
            if size == 0:
                break
            block = f.read(size)
            if not block:
                break
            n += block.count(b"\n")
            last = block[-1:]
            if remaining is not None:
                remaining -= len(block)
    return n + (0 if last == b"\n" else 1)


def split_lines(data: bytes, name: str = "<stdin>", errors: str = "strict") -> list[str]:
    """Decode ``data`` into lines exactly as :func:`read_lines` reads a file (split on ``\\n``
    only, a ``\\r`` before it dropped); a decoding error names ``name:line``."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    return [
        decode_line(line[:-1] if line.endswith(b"\r") else line, name, i, errors)
        for i, line in enumerate(raw, 1)
    ]


def read_text_lines(path: str, errors: str = "strict") -> list[str]:
    """Every line of the file ``path``, or of standard input when ``path`` is ``-``."""
    if path == "-":
        return split_lines(sys.stdin.buffer.read(), "<stdin>", errors)
    return [text for _, text in read_lines(path, errors=errors)]
