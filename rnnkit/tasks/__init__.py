"""Task registry and the loaders that find a task from a data directory or a checkpoint.

A task owns what differs between problems: how ``preprocess`` reads its raw text, how batches
are made from binarized data, the loss, validation, inference; its interface is the
:class:`~rnnkit.tasks.base.Task` protocol, checked when a class registers (``TASK_REGISTRY``),
so the rest of rnnkit never branches on a task's name. ``preprocess.json`` in a data
directory names the task that made it (a fairseq ``data-bin`` has none: its file names say it,
:mod:`rnnkit.data.databin`); a checkpoint names the task that trained it, so every command can
refuse data or models of another task.
``DATA`` may also be several shard directories joined by ``:`` (:mod:`rnnkit.data.shards`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnkit.data import shards
from rnnkit.data.databin import Langs, fairseq_meta, fairseq_task, pick_direction
from rnnkit.errors import RnnkitError
from rnnkit.tasks.base import Batching, Task, TaskBase, TaskRegistry

__all__ = [
    "TASK_REGISTRY",
    "Batching",
    "Task",
    "TaskBase",
    "data_task_name",
    "load_task",
    "task_from_checkpoint",
]

TASK_REGISTRY = TaskRegistry("task")  # a registered class is checked against Task


def read_data_meta(data_dir: str | os.PathLike, langs: Langs = (None, None)) -> dict[str, Any]:
    """The ``preprocess.json`` of a data directory (with a clear error if it is not one).

    A fairseq ``data-bin`` (no ``preprocess.json``) gets the same fields from its file names.
    ``langs`` (-s, -t) picks the direction of translation data: the directory's pair in either
    order (with several pairs in a fairseq data-bin, which one).
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise RnnkitError(f"{d}: no such data directory")
    meta_path = d / "preprocess.json"
    if not meta_path.is_file():
        meta = fairseq_meta(d, langs)
        if meta is None:
            raise RnnkitError(
                f"{d}: not a data directory (no preprocess.json, and no fairseq data-bin files "
                "such as train.bin or train.SRC-TGT.SRC.bin; run `rnnkit preprocess`)"
            )
        return meta
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RnnkitError(f"{meta_path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(meta, dict) or "task" not in meta:
        raise RnnkitError(f"{meta_path}: no 'task' field")
    return pick_direction(meta, d, langs)


def data_task_name(data_dir: str | os.PathLike) -> str:
    """The task of a data directory: its ``preprocess.json``'s, or a fairseq data-bin's (which
    needs no -s/-t to say, however many language pairs it holds)."""
    d = Path(data_dir)
    name = None if (d / "preprocess.json").is_file() or not d.is_dir() else fairseq_task(d)
    return name or read_data_meta(d)["task"]


def load_task(
    data_dir: str | os.PathLike, expect: str | None = None, langs: Langs = (None, None)
) -> Task:
    """The task object for ``data_dir``; with ``expect``, data of another task is an error.

    ``langs`` is ``(-s, -t)``: the direction of translation data (:func:`read_data_meta`).

    ``data_dir`` may be shards ``DIR0:DIR1:...``: the task is built on the first, checked
    against the others and given them (:func:`rnnkit.data.shards.attach`), so training reads
    epoch k's train split from shard (k - 1) mod n.
    """
    dirs = shards.split_data_arg(data_dir)
    data_dir = dirs[0]
    meta = read_data_meta(data_dir, langs)
    if expect is not None and meta["task"] != expect:
        raise RnnkitError(f"{data_dir}: data of task {meta['task']!r}, expected {expect!r}")
    if meta["task"] not in TASK_REGISTRY:
        raise RnnkitError(
            f"{data_dir}: holds {meta['task']!r} data, and no installed task handles it "
            f"(tasks: {', '.join(TASK_REGISTRY.names())})"
        )
    task = TASK_REGISTRY.get(meta["task"]).from_data_dir(os.fspath(data_dir), meta)
    if len(dirs) > 1:
        shards.attach(task, dirs, [meta] + [read_data_meta(d, langs) for d in dirs[1:]])
    return task


def task_from_checkpoint(state: Mapping[str, Any]) -> Task:
    """The task object stored in a checkpoint (dictionaries and tokenizer, no data needed)."""
    name = state["task"]
    if name not in TASK_REGISTRY:
        raise RnnkitError(
            f"the checkpoint was trained by task {name!r}, which no installed task handles "
            f"(tasks: {', '.join(TASK_REGISTRY.names())}); if a plugin defines it, give its "
            "folder with --user-dir (Python: rnnkit.load_plugins(user_dir=...))"
        )
    return TASK_REGISTRY.get(name).from_checkpoint(state)


from rnnkit.tasks import lm as _lm  # noqa: E402,F401  (built-in tasks register themselves)
from rnnkit.tasks import tagging as _tagging  # noqa: E402,F401
from rnnkit.tasks import translation as _translation  # noqa: E402,F401
