"""File helpers shared by every command: atomic writes and line reading with located errors.

Writes go to a temporary file in the destination's folder and are renamed over the target only
once complete, so an interrupted run never leaves a half-written file behind; a write that
fails (full disk, ``ulimit -f``, read-only) is a one-line :class:`WriteError` naming the
destination (:func:`writing` does the same for files written in place). Text input is read
as bytes split on ``\\n`` only, so a decoding error can name its file and line exactly. Every line
reader here (:func:`read_lines`, :func:`stream_lines`, :func:`split_lines`) drops a UTF-8 byte
order mark at the start of its input, with one warning per file, and warns of a NUL byte naming
its line (:func:`check_line`).
"""

from __future__ import annotations

import contextlib
import errno
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


# What a failed write says, by errno; any other errno gives the system's own text.
_WRITE_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large (over the file-size limit, see `ulimit -f`)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class WriteError(RnnkitError):
    """A file that could not be written (disk full, size limit, read-only, no permission).

    ``path`` names the destination the user knows (not a temporary file); ``note`` says what
    is still intact, e.g. ``checkpoint_last.pt (update 40) is intact``.
    """

    def __init__(self, path: str | os.PathLike, reason: str, note: str = "") -> None:
        super().__init__(os.fspath(path), reason, note)  # all args, so it pickles across workers
        self.path, self.reason, self.note = os.fspath(path), reason, note

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" + (f"; {self.note}" if self.note else "")

    def with_note(self, note: str) -> WriteError:
        """The same error, saying what is still intact."""
        return WriteError(self.path, self.reason, note)

    def moved(self, src: str | os.PathLike, dest: str | os.PathLike) -> WriteError:
        """The same error with a path under the folder ``src`` named under ``dest`` instead."""
        try:
            rel = Path(self.path).relative_to(src)
        except ValueError:
            return self
        return WriteError(Path(dest) / rel, self.reason, self.note)


def write_reason(e: OSError) -> str:
    """What an ``OSError`` from a write says, in the lower-case style of rnnkit's errors."""
    if e.errno in _WRITE_REASONS:
        return _WRITE_REASONS[e.errno]
    text = (e.strerror or os.strerror(e.errno)) if e.errno else str(e)
    return text[:1].lower() + text[1:]


@contextlib.contextmanager
def writing(path: str | os.PathLike, *aliases: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` of writing ``path`` in the block (``open``, ``write``, ``flush``,
    ``close``) into a one-line :class:`WriteError` naming ``path``.

    Python's write errors name no file; one that names a file other than ``path`` or its
    ``aliases`` (a temporary file standing for it) is not about ``path`` and passes through.
    """
    try:
        yield
    except OSError as e:
        ours = {os.fspath(path), *map(os.fspath, aliases)}
        if e.filename is not None and os.fspath(e.filename) not in ours:
            raise
        raise WriteError(path, write_reason(e)) from None


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` when the block succeeds.

    A failed write (disk full, ``ulimit -f``, read-only folder…) removes the temporary file and
    raises a :class:`WriteError` naming ``path``; ``path`` itself is left as it was.
    """
    path = Path(path)
    try:  # the error names the temporary file; the user knows ``path``
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise WriteError(path, write_reason(e)) from None
    binary = "b" in mode
    try:
        with writing(path, tmp):
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


BOM = b"\xef\xbb\xbf"
_bom_reported: set[str] = set()  # files whose byte order mark was already warned of
_nul_reported: dict[str, int] = {}  # NUL warnings so far, per file
NUL_WARNINGS = 5  # per file; a binary file would otherwise warn on every line


def check_line(raw: bytes, name: str | os.PathLike, lineno: int) -> bytes:
    """``raw`` (line ``lineno`` of ``name``, without its ``\\n``) without a UTF-8 byte order mark
    at the start of the file (one warning per file); a NUL byte is kept, with a warning naming
    the line (at most :data:`NUL_WARNINGS` per file)."""
    if lineno == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
        warn_bom(name)
    nul = raw.find(b"\0")
    if nul >= 0:
        seen = _nul_reported.get(os.fspath(name), 0)
        _nul_reported[os.fspath(name)] = seen + 1
        if seen < NUL_WARNINGS:
            last = (
                "; further ones in this file are not reported" if seen + 1 == NUL_WARNINGS else ""
            )
            get_reporter().warning(f"{at(name, lineno)}: NUL byte at byte {nul} of the line{last}")
    return raw


def warn_bom(name: str | os.PathLike) -> None:
    """Warn, once per file, that a byte order mark at the start of ``name`` is dropped."""
    if os.fspath(name) not in _bom_reported:
        _bom_reported.add(os.fspath(name))
        get_reporter().warning(f"{name}: starts with a UTF-8 byte order mark; dropped")


def check_bom(path: str | os.PathLike) -> None:
    """:func:`warn_bom` now if the file ``path`` starts with a byte order mark (so worker
    processes forked later, which read it again, do not warn again)."""
    with open(path, "rb") as f:
        if f.read(len(BOM)) == BOM:
            warn_bom(path)


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
        yield lineno, decode_line(check_line(strip_eol(raw), name, lineno), name, lineno, errors)


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
        if start:  # a pipe or process substitution cannot seek, and is read from its start
            f.seek(start)
        lineno = first_line - 1
        pos = start
        for raw in f:
            if end is not None and pos >= end:
                break
            pos += len(raw)
            lineno += 1
            yield (
                lineno,
                decode_line(check_line(strip_eol(raw), path, lineno), path, lineno, errors),
            )


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
        decode_line(
            check_line(line[:-1] if line.endswith(b"\r") else line, name, i), name, i, errors
        )
        for i, line in enumerate(raw, 1)
    ]


def read_text_lines(path: str, errors: str = "strict") -> list[str]:
    """Every line of the file ``path``, or of standard input when ``path`` is ``-``."""
    if path == "-":
        return split_lines(sys.stdin.buffer.read(), "<stdin>", errors)
    return [text for _, text in read_lines(path, errors=errors)]
