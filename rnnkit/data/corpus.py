"""Where each task's raw text lives and where its binarized output goes, split into line chunks.

A task reads one or more line-parallel *streams* per split: ``lm`` one text file; ``translation``
``PREFIX.SRC`` and ``PREFIX.TGT``; ``tagging`` a folder with ``seq.in`` (tokens), ``seq.out`` (one
tag per token) and optionally ``label`` (one label per line); ``classification`` the same folder's
``seq.in`` and ``label``. This module names those files and
the outputs (fairseq's names: ``dict.{lang}.txt``, ``{split}.{src}-{tgt}.{lang}.{bin,idx}``,
``{split}.{bin,idx}`` for lm), checks that parallel files have as many lines, and cuts a split
into line ranges whose byte offsets in every file let workers read them independently.
See docs/binarized-format.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rnnkit.errors import RnnkitError, at
from rnnkit.io import check_bom, check_readable, count_lines

StreamKind = Literal["text", "tags", "label"]


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


TAGGING_FILES = {"in": "seq.in", "tags": "seq.out", "label": "label"}


def task_streams(task: str, src: str | None, tgt: str | None, labels: bool) -> tuple[Stream, ...]:
    """The streams of ``task``; ``labels`` adds the per-line label stream."""
    if task == "lm":
        return (Stream("text", "text", "", "dict.txt", True),)
    if task == "translation":
        assert src and tgt
        return tuple(
            Stream(lang, "text", f"{src}-{tgt}.{lang}", f"dict.{lang}.txt", True)
            for lang in (src, tgt)
        )
    # Tagging appends no </s>: token i and tag i must stay aligned one to one.
    streams = [Stream("in", "text", "in", "dict.in.txt", False)]
    if task == "tagging":
        streams.append(Stream("tags", "tags", "tags", "dict.tags.txt", False))
    if labels:
        streams.append(Stream("label", "label", "label", "dict.label.txt", False))
    return tuple(streams)


def input_path(task: str, prefix: str, stream: Stream) -> Path:
    """The raw file of ``stream`` for a ``--trainpref``-style ``prefix``."""
    if task == "lm":
        return Path(prefix)
    if task == "translation":
        return Path(f"{prefix}.{stream.name}")
    return Path(prefix) / TAGGING_FILES[stream.name]


def output_prefix(split: str, stream: Stream) -> str:
    """``train`` (lm), ``train.de-en.de`` (translation) or ``train.tags`` (tagging)."""
    return f"{split}.{stream.output}" if stream.output else split


def split_names(kind: str, prefixes: list[str]) -> list[str]:
    """``valid, valid1, valid2 …`` for several ``--validpref`` prefixes, as fairseq names them."""
    return [kind if i == 0 else f"{kind}{i}" for i in range(len(prefixes))]


def open_split(task: str, name: str, prefix: str, streams: tuple[Stream, ...]) -> Split:
    """Check every file of a split exists and all have one line count; return the :class:`Split`."""
    if task in ("tagging", "classification") and not Path(prefix).is_dir():
        files = "seq.in, seq.out (and label)" if task == "tagging" else "seq.in and label"
        raise RnnkitError(f"{prefix}: expected a folder with {files} for --task {task}")
    paths = tuple(check_readable(input_path(task, prefix, s)) for s in streams)
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
