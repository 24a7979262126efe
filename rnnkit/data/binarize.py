"""The two passes of preprocessing over one chunk of lines: count tokens, then binarize them.

Both passes run the same record reader, so the checks (tags per token, invalid UTF-8) and the
rule for empty training lines apply identically, and an error names the same file and line
whichever pass meets it. Passes run in-process for one worker, else in a forked
``multiprocessing`` pool; chunks are consumed in order and their outputs merged in order, so the
result does not depend on the number of workers. Nothing here imports torch or a UI toolkit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from rnnkit.data.binarized import DatasetWriter, best_dtype, data_paths
from rnnkit.data.corpus import Chunk, Stream, output_prefix
from rnnkit.dictionary import UNK, Dictionary
from rnnkit.errors import RnnkitError, at
from rnnkit.io import WriteError, read_lines
from rnnkit.tokenizers import Tokenizer, load_tokenizer

R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    """One chunk and everything a worker needs to process it (plain, picklable data)."""

    chunk: Chunk
    streams: tuple[Stream, ...]
    tokenizer: str
    tokenizer_dir: str
    errors: str
    workdir: str
    dictionaries: tuple[Dictionary, ...] | None = None
    keep_empty: bool = False

    @property
    def drop_empty(self) -> bool:
        # Empty lines are sentences in valid/test (line alignment matters) but noise in train,
        # unless the user keeps them (a char LM's blank lines are part of the text).
        return self.chunk.split.is_train and not self.keep_empty


@dataclass
class StreamStats:
    """Counts for one output file: sequences, tokens (with ``</s>``), ``<unk>`` ids, OOV tokens."""

    sequences: int = 0
    tokens: int = 0
    unk: int = 0
    replaced: int = 0

    def add(self, other: StreamStats) -> None:
        self.sequences += other.sequences
        self.tokens += other.tokens
        self.unk += other.unk
        self.replaced += other.replaced


@dataclass
class ChunkResult:
    """What a pass returns for a chunk: kept and dropped lines, token counters or stream stats."""

    kept: int = 0
    dropped: int = 0
    counters: tuple[Counter, ...] = ()
    stats: tuple[StreamStats, ...] = ()


def tokenize(stream: Stream, line: str, tokenizer: Tokenizer) -> list[str]:
    """One raw line of ``stream`` as token strings."""
    if stream.kind == "text":
        return tokenizer.encode(line)
    if stream.kind == "tags":
        return line.split()
    label = line.strip()
    return [label] if label else []


def records(job: Job, tokenizer: Tokenizer) -> Iterator[tuple[int, list[list[str]] | None]]:
    """``(line number, tokens per stream)`` for each line of the chunk; ``None`` if dropped."""
    chunk = job.chunk
    with contextlib.ExitStack() as stack:
        readers = [
            stack.enter_context(
                contextlib.closing(read_lines(p, job.errors, start, None, chunk.first_line))
            )
            for p, start in zip(chunk.split.paths, chunk.starts, strict=True)
        ]
        for rows in islice(zip(*readers, strict=True), chunk.nlines):
            lineno = rows[0][0]
            lines = [text for _, text in rows]
            tokens = [tokenize(s, t, tokenizer) for s, t in zip(job.streams, lines, strict=True)]
            check_tags(job, lineno, tokens)
            # A line is empty when it has no tokens (for `space`, whitespace-only lines too).
            empty = any(
                not t for s, t in zip(job.streams, tokens, strict=True) if s.kind != "label"
            )
            yield lineno, None if job.drop_empty and empty else tokens


def check_tags(job: Job, lineno: int, tokens: list[list[str]]) -> None:
    """Raise unless every ``tags`` stream has one tag per token of the first stream."""
    for i, s in enumerate(job.streams):
        if s.kind == "tags" and len(tokens[i]) != len(tokens[0]):
            paths = job.chunk.split.paths
            raise RnnkitError(
                f"{at(paths[i], lineno)}: {len(tokens[i])} tags for {len(tokens[0])} tokens "
                f"on line {lineno} of {paths[0]}"
            )


def kept_tokens(job: Job, result: ChunkResult) -> Iterator[list[list[str]]]:
    """Tokens per stream of each line the chunk keeps, tallying kept and dropped in ``result``."""
    tokenizer = load_tokenizer(job.tokenizer, job.tokenizer_dir)
    for _, tokens in records(job, tokenizer):
        if tokens is None:
            result.dropped += 1
        else:
            result.kept += 1
            yield tokens


def count_chunk(job: Job) -> ChunkResult:
    """Pass 1: count every token of every stream in the chunk (for building dictionaries)."""
    result = ChunkResult(counters=tuple(Counter() for _ in job.streams))
    for tokens in kept_tokens(job, result):
        for counter, toks in zip(result.counters, tokens, strict=True):
            counter.update(toks)
    return result


def chunk_prefix(job: Job, stream: Stream) -> Path:
    """Where a chunk's part of ``stream`` is written before the in-order merge."""
    name = output_prefix(job.chunk.split.name, stream)
    return Path(job.workdir) / f"{name}.part{job.chunk.index}"


def binarize_chunk(job: Job) -> ChunkResult:
    """Pass 2: write the chunk's sequences of every stream as ``.part{i}.{bin,idx}`` datasets.

    A failed write names the dataset the part is for (``train.bin``), which the user knows.
    """
    try:
        return _binarize_chunk(job)
    except WriteError as e:
        raise WriteError(re.sub(r"\.part\d+(?=\.\w+$)", "", e.path), e.reason) from None


def _binarize_chunk(job: Job) -> ChunkResult:
    assert job.dictionaries is not None
    prefixes = [chunk_prefix(job, s) for s in job.streams]
    writers = [
        DatasetWriter(data_paths(p)[0], best_dtype(len(d)))
        for p, d in zip(prefixes, job.dictionaries, strict=True)
    ]
    result = ChunkResult(stats=tuple(StreamStats() for _ in job.streams))
    columns = (job.streams, job.dictionaries, writers, result.stats)
    for tokens in kept_tokens(job, result):
        for s, d, w, st, toks in zip(*columns, tokens, strict=True):
            ids = d.encode(toks, append_eos=s.append_eos)
            w.add(ids)
            unk = ids.count(d.unk_index)
            st.sequences += 1
            st.tokens += len(ids)
            st.unk += unk
            st.replaced += unk - toks.count(UNK)
    for w, p in zip(writers, prefixes, strict=True):
        w.finalize(data_paths(p)[1])
    return result


def merge_parts(jobs: list[Job], stream: Stream, dictionary: Dictionary, dest: Path) -> None:
    """Join the chunks' parts of ``stream`` in order into ``dest.{bin,idx}``; remove the parts."""
    parts = [chunk_prefix(j, stream) for j in jobs]
    bin_path, idx_path = data_paths(dest)
    if len(parts) == 1:  # the common single-worker case: a rename, not a copy
        for src, dst in zip(data_paths(parts[0]), (bin_path, idx_path), strict=True):
            os.replace(src, dst)
        return
    writer = DatasetWriter(bin_path, best_dtype(len(dictionary)))
    for p in parts:
        writer.merge_file(p)
        for f in data_paths(p):
            f.unlink()
    writer.finalize(idx_path)


class Runner:
    """Runs a pass over jobs in order: in-process for one worker, else in a forked pool."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None

    def __enter__(self) -> Runner:
        if self.workers > 1:
            # fork: workers inherit loaded plugins and imports (torch is slow to import again).
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            self._pool = ctx.Pool(self.workers)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def map(self, fn: Callable[[Job], R], jobs: Iterable[Job]) -> Iterator[R]:
        """``fn`` over ``jobs`` with results in job order; the first failing job's error raises."""
        jobs = list(jobs)
        if self._pool is None or len(jobs) == 1:
            return map(fn, jobs)
        return self._pool.imap(fn, jobs)
