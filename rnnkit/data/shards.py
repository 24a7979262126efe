"""Sharded data directories: ``DIR0:DIR1:...`` trains epoch k on the train split of shard
(k - 1) mod n, as fairseq does; valid and test splits, dictionaries and tokenizer come from the
first.

A corpus too large to binarize (or keep) in one directory is split into parts, the first
binarized as usual and every other with the first's dictionaries (``rnnkit preprocess
--srcdict/--tgtdict``; README, "Sharded data"). :func:`split_data_arg` reads the colon list;
:class:`DataShards` holds each shard's ``preprocess.json`` and :meth:`DataShards.check` refuses,
at start, a shard of another task, other languages or tokenizer, or other dictionary files.
The choice of shard is made here for every task: :func:`rnnkit.tasks.load_task` builds the task
on the first shard and attaches the shards, and the training loop asks :func:`train_task` for
the task whose ``train`` split an epoch reads (a task object of the same class built on that
shard's directory). Nothing else in a task knows about shards, and a resumed run reads the shard
of the epoch it resumes in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter

SEPARATOR = ":"
ATTRIBUTE = "data_shards"  # where load_task attaches the DataShards of a sharded task


def split_data_arg(data: str | os.PathLike) -> list[str]:
    """The data directories of a ``DATA`` argument: one directory, or several joined by ``:``
    (a directory whose own name holds a ``:`` is taken whole). A missing shard is an error."""
    text = os.fspath(data)
    if Path(text).is_dir() or SEPARATOR not in text:
        return [text]
    dirs = [d for d in text.split(SEPARATOR) if d]
    for i, d in enumerate(dirs):
        if not Path(d).is_dir():
            raise RnnkitError(f"{d}: no such data directory (shard {i + 1} of {len(dirs)})")
    return dirs


def _options_differ(first: Mapping[str, Any], other: Mapping[str, Any]) -> str | None:
    """What makes shard metadata ``other`` data of another kind than ``first``, if anything."""
    if first.get("task") != other.get("task"):
        return f"holds {other.get('task')!r} data, the first shard {first.get('task')!r} data"
    for key in ("source_lang", "target_lang"):
        a, b = first.get("options", {}).get(key), other.get("options", {}).get(key)
        if a != b:
            return f"has {key} {b!r}, the first shard {a!r}"
    if first.get("tokenizer") != other.get("tokenizer"):
        return f"has tokenizer {other.get('tokenizer')}, the first shard {first.get('tokenizer')}"
    return None


@dataclass(frozen=True)
class DataShards:
    """The shard directories of a run, in order, and each one's ``preprocess.json``."""

    dirs: tuple[str, ...]
    metas: tuple[Mapping[str, Any], ...]

    def __len__(self) -> int:
        return len(self.dirs)

    def index(self, epoch: int) -> int:
        """The shard whose train split epoch ``epoch`` (1-based) reads: (epoch - 1) mod n."""
        return (epoch - 1) % len(self.dirs)

    def name(self, i: int) -> str:
        return f"shard {i + 1} of {len(self.dirs)} ({self.dirs[i]})"

    def shared_files(self) -> list[str]:
        """Files every shard must hold byte for byte as the first does: its dictionaries and
        the tokenizer's model file, if the tokenizer has one."""
        first = self.metas[0]
        names = list(first.get("dictionaries", {})) or sorted(
            p.name for p in Path(self.dirs[0]).glob("dict*.txt")
        )
        tokenizer = first.get("tokenizer")
        if isinstance(tokenizer, Mapping) and tokenizer.get("model"):
            names.append(str(tokenizer["model"]))
        return names

    def check(self) -> None:
        """Every shard is data of the first's task, languages and tokenizer, with the same
        dictionaries (one-line :class:`RnnkitError` naming the shard and the file)."""
        files = self.shared_files()
        options = ["--srcdict", "--tgtdict"]
        for i in range(1, len(self.dirs)):
            differ = _options_differ(self.metas[0], self.metas[i])
            if differ:
                raise RnnkitError(f"{self.name(i)} {differ}; every shard must match the first")
            for n, name in enumerate(files):
                mine, first = Path(self.dirs[i]) / name, Path(self.dirs[0]) / name
                if mine.is_file() and mine.read_bytes() == first.read_bytes():
                    continue
                how = "is missing" if not mine.is_file() else f"differs from {first}"
                hint = f" (binarize it with `rnnkit preprocess {options[n]} {first}`)"
                raise RnnkitError(
                    f"{self.name(i)}: {mine} {how}; every shard must use the first shard's "
                    f"{name}{hint if n < len(options) and name.startswith('dict') else ''}"
                )


def attach(task: Any, dirs: Sequence[str], metas: Sequence[Mapping[str, Any]]) -> Any:
    """Check the shards and attach them to ``task`` (built on the first); returns ``task``."""
    shards = DataShards(tuple(dirs), tuple(metas))
    shards.check()
    setattr(task, ATTRIBUTE, shards)
    return task


def shards_of(task: Any) -> DataShards | None:
    """The shards :func:`attach` gave ``task``; None for a task on one directory."""
    return getattr(task, ATTRIBUTE, None)


def shard_task(task: Any, i: int) -> Any:
    """``task`` itself for shard 0, else a task of its class on shard ``i``'s directory."""
    shards = shards_of(task)
    if shards is None or i == 0:
        return task
    return type(task).from_data_dir(shards.dirs[i], shards.metas[i])


def train_task(task: Any, epoch: int) -> Any:
    """The task whose ``train`` split epoch ``epoch`` (1-based) trains on; says which shard."""
    shards = shards_of(task)
    if shards is None:
        return task
    i = shards.index(epoch)
    get_reporter().info(f"epoch {epoch}: training on {shards.name(i)}")
    return shard_task(task, i)


def train_tasks(task: Any) -> list[Any]:
    """One task per shard (``[task]`` unsharded), for checking every shard's train split."""
    shards = shards_of(task)
    return [task] if shards is None else [shard_task(task, i) for i in range(len(shards))]
