"""A split's line-parallel raw files and where its binarized output goes, cut into line chunks.

A task reads one or more line-parallel *streams* per split (:class:`Stream`); the task says
which and where their files are (``Task.streams`` and ``Task.input_files`` in
:mod:`rnnkit.tasks.base`): the language model one text file, translation ``PREFIX.SRC`` and
``PREFIX.TGT``, tagging a folder of ``seq.in``, ``seq.out`` and ``label``. This module names the
outputs (fairseq's names: ``{split}.{stream.output}.{bin,idx}``, ``{split}.{bin,idx}`` for a
stream without an output name), checks that parallel files have as many lines, and cuts a split
into line ranges whose byte offsets in every file let workers read them independently.
See docs/binarized-format.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rnnkit.errors import RnnkitError, at
from rnnkit.io import check_bom, check_readable, count_lines

StreamKind = Literal["text", "tags", "label"]
DEFAULT_TASK = "lm"  # what ``rnnkit preprocess`` makes without --task


@dataclass(frozen=True)
class Stream:
    """One line-parallel input of a task.

    ``kind`` says how a line becomes tokens: ``text`` through the tokenizer, ``tags`` split on
    whitespace, ``label`` the whole stripped line as one symbol. ``output`` is the middle of the
    output name (``train.{output}.bin``; empty for lm), ``dictionary`` the dict file's name.
    """

    name: str
    kind: StreamKind
    output: str
    dictionary: str
    append_eos: bool


@dataclass(frozen=True)
class Split:
    """A split (``train``, ``valid``, ``valid1``, ``test`` …) and its input file per stream."""

    name: str
    paths: tuple[Path, ...]
    nlines: int

    @property
    def is_train(self) -> bool:
        return self.name == "train"


@dataclass(frozen=True)
class Chunk:
    """Lines ``[first_line, first_line + nlines)`` (1-based) of a split, at ``starts`` bytes."""

    split: Split
    index: int
    starts: tuple[int, ...]
    first_line: int
    nlines: int


def output_prefix(split: str, stream: Stream) -> str:
    """``train.{stream.output}`` (``train.de-en.de``, ``train.tags``), or ``train`` without one."""
    return f"{split}.{stream.output}" if stream.output else split


def split_names(kind: str, prefixes: list[str]) -> list[str]:
    """``valid, valid1, valid2 …`` for several ``--validpref`` prefixes, as fairseq names them."""
    return [kind if i == 0 else f"{kind}{i}" for i in range(len(prefixes))]


def open_split(name: str, files: Sequence[Path]) -> Split:
    """Check every file of a split exists and all have one line count; return the :class:`Split`."""
    paths = tuple(check_readable(f) for f in files)
    for p in paths:  # warned of here, once, before worker processes read the files
        check_bom(p)
    counts = [count_lines(p) for p in paths]
    for path, n in zip(paths[1:], counts[1:], strict=True):
        if n != counts[0]:
            longer, shorter = (paths[0], path) if counts[0] > n else (path, paths[0])
            line = min(n, counts[0]) + 1
            raise RnnkitError(
                f"{at(longer, line)}: no matching line in {shorter} "
                f"({counts[0]} lines in {paths[0]}, {n} in {path})"
            )
    return Split(name, paths, counts[0])


def line_offsets(path: str | os.PathLike, lines: list[int]) -> list[int]:
    """Byte offset of the start of each 0-based line index in ``lines`` (sorted ascending)."""
    out: list[int] = []
    pending = iter(lines)
    target = next(pending, None)
    seen = 0  # newlines before the current block
    base = 0  # byte offset of the current block
    with open(path, "rb") as f:
        while target is not None and target == 0:
            out.append(0)
            target = next(pending, None)
        while target is not None and (block := f.read(1 << 20)):
            n = block.count(b"\n")
            pos = -1
            found = 0  # newlines of this block located so far
            while target is not None and target <= seen + n:
                while found < target - seen:
                    pos = block.index(b"\n", pos + 1)
                    found += 1
                out.append(base + pos + 1)
                target = next(pending, None)
            seen += n
            base += len(block)
    if target is not None:
        raise ValueError(f"{path} has fewer than {target} lines")
    return out


def plan_chunks(split: Split, nchunks: int) -> list[Chunk]:
    """Cut ``split`` into at most ``nchunks`` consecutive line ranges of near-equal line counts."""
    k = max(1, min(nchunks, split.nlines))
    firsts = [split.nlines * i // k for i in range(k)]  # 0-based first line of each chunk
    offsets = [line_offsets(p, firsts) for p in split.paths]
    ends = firsts[1:] + [split.nlines]
    return [
        Chunk(split, i, tuple(o[i] for o in offsets), firsts[i] + 1, ends[i] - firsts[i])
        for i in range(k)
    ]
