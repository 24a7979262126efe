"""Reading raw lines for ``generate`` and ``score --input``, and where their results go.

Lines come from a file or stdin (``-``) one at a time (invalid UTF-8 replaced, with a warning
naming the line), in batches handed over as soon as they are full, so an answer can follow
every batch; results go to stdout or to a file written atomically. Line pairs (``score --input
SRC --reference TGT``) are read from two files in step; one ending first is a one-line error.
Nothing here imports torch: ``rnnkit score --sys`` imports this module's neighbours only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rnnkit.errors import RnnkitError
from rnnkit.io import atomic_write, check_readable, stream_lines

if TYPE_CHECKING:
    from rnnkit.tasks.inference import LinesRequest


def raw_buffer(input: str, buffer_size: int | None) -> int:  # noqa: A002
    """Lines per batch in raw mode: ``--buffer-size``, else 1 on a terminal and 64 otherwise."""
    size = buffer_size or (1 if input == "-" and sys.stdin.isatty() else 64)
    if size < 1:
        raise RnnkitError("--buffer-size must be at least 1")
    return size


def source_name(name: str) -> str:
    """How warnings name the input: ``<stdin>`` or the file name."""
    return "<stdin>" if name == "-" else name


def lines_request(
    name: str, max_positions: int, skip_invalid: bool, batch_size: int = 64
) -> LinesRequest:
    """The :class:`~rnnkit.tasks.inference.LinesRequest` of raw input ``name``."""
    from rnnkit.tasks.inference import LinesRequest

    return LinesRequest(source_name(name), max_positions, skip_invalid, batch_size)


@contextlib.contextmanager
def sink(output: Path | None) -> Iterator[IO[str]]:
    """stdout, or ``output`` written to a temporary file and renamed at the end."""
    if output is None:
        yield sys.stdout
        return
    with atomic_write(output) as f:
        yield f


def read_raw(name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) from a file or stdin (``-``), one line at a time, invalid UTF-8
    replaced with a warning naming the line."""
    if name == "-":
        yield from stream_lines(sys.stdin.buffer, "<stdin>", errors="warn")
        return
    with open(check_readable(name), "rb") as f:
        yield from stream_lines(f, name, errors="warn")


def read_batches(name: str, buffer_size: int | None) -> Iterator[list[tuple[int, str]]]:
    """:func:`read_raw`'s lines in lists of ``buffer_size`` (:func:`raw_buffer`; the last may be
    shorter), each handed over as soon as it is full, so output can follow every batch. Nothing
    is checked or read before the first batch is asked for."""
    size = raw_buffer(name, buffer_size)
    buffer: list[tuple[int, str]] = []
    for line in read_raw(name):
        buffer.append(line)
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def read_pair_batches(
    source: str, reference: str, buffer_size: int | None
) -> Iterator[list[tuple[int, str, str]]]:
    """(line number, source, reference) from two line-aligned inputs (at most one of them
    ``-``), in batches as :func:`read_batches`; the first input to end before the other raises
    a one-line error naming both and the line."""
    if source == "-" and reference == "-":
        raise RnnkitError("--input and --reference cannot both be - (stdin)")
    size = raw_buffer(source if source == "-" else reference, buffer_size)
    buffer: list[tuple[int, str, str]] = []
    sources, references = read_raw(source), read_raw(reference)
    last = 0
    while True:
        src, ref = next(sources, None), next(references, None)
        if src is None or ref is None:
            break
        last = src[0]
        buffer.append((last, src[1], ref[1]))
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer
    if (src is None) != (ref is None):
        ended, other = (source, reference) if src is None else (reference, source)
        raise RnnkitError(
            f"{source_name(ended)} ends at line {last} but {source_name(other)} goes on "
            "(--input and --reference must have one line per pair)"
        )
