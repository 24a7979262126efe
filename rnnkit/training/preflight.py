"""Checks a training run passes before its first update: everything that needs no training.

A mistake found by the training loop costs the work done before it (a missing ``valid`` split
used to surface after a whole epoch). :func:`check_run` runs at the start of
:func:`rnnkit.training.loop.fit`, with the run's own options (a resumed run's merged with its
checkpoint's), and ``rnnkit train --nproc-per-node N`` runs :func:`check_launch` in the
launching process before any worker starts. They check the names of the optimizer, LR schedule
and criterion, ``--best-checkpoint-metric`` against what validation reports, the task's own
options, and, through the task's ``check_split`` hook, that the ``train`` split and every
``--valid-subset`` split exist, are not empty, fit the batch options and build their first
batch (the ``train`` split of every shard of sharded data, :mod:`rnnkit.data.shards`). A hook
opens only the split's index and reads one batch, so the checks take milliseconds on any
corpus. A task without the hooks (a plugin) is checked for the rest.

Failures are :class:`PreflightError`: every worker finds the same one, so under torchrun only
local rank 0 prints it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rnnkit.data import shards
from rnnkit.errors import RnnkitError
from rnnkit.registry import suggest
from rnnkit.training.config import TrainConfig

if TYPE_CHECKING:
    from rnnkit.tasks.base import Task


class PreflightError(RnnkitError):
    """A mistake found before training; every worker finds the same one."""


def valid_splits(cfg: TrainConfig) -> list[str]:
    """The ``--valid-subset`` splits, in order, each once."""
    return list(dict.fromkeys(cfg.valid_subset.split(",")))


def where(train: bool) -> str:
    """How an error names the option that asked for a split (its prefix, maybe empty)."""
    return "" if train else "--valid-subset: "


def require_split(
    data_dir: str | Path, split: str, files: Sequence[Path], suffix: str, train: bool
) -> None:
    """Raise, naming the missing files and the splits there are, unless all ``files`` exist.

    ``suffix`` ends every split's index file in ``data_dir`` (``.idx`` for ``train.idx``),
    which is how the splits that do exist are found.
    """
    missing = [p.name for p in files if not p.is_file()]
    if not missing:
        return
    there = sorted(p.name[: -len(suffix)] for p in Path(data_dir).glob(f"*{suffix}"))
    hint = "; binarize it with `rnnkit preprocess --trainpref`" if train else ""
    raise PreflightError(
        f"{where(train)}no {split!r} split in {data_dir} ({' and '.join(missing)} not "
        f"found; splits there: {', '.join(there) or 'none'}){hint}"
    )


def require_nonempty(data_dir: str | Path, split: str, count: int, unit: str, train: bool) -> None:
    """Raise if ``split`` holds no ``unit`` (an empty split trains nothing or validates 0.0)."""
    if count <= 0:
        raise PreflightError(f"{where(train)}the {split!r} split in {data_dir} is empty (0 {unit})")


def check_max_tokens(
    data_dir: str | Path, split: str, sizes: np.ndarray, ids: np.ndarray, max_tokens: int
) -> None:
    """Every example of ``sizes`` (their numbers in the split: ``ids``) fits ``--max-tokens``."""
    if max_tokens <= 0 or len(sizes) == 0:
        return
    longest = int(np.argmax(sizes))
    if int(sizes[longest]) > max_tokens:
        raise PreflightError(
            f"--max-tokens {max_tokens}: example {int(ids[longest]) + 1} of the {split!r} split "
            f"in {data_dir} has {int(sizes[longest])} tokens; give --max-tokens "
            f"{int(sizes[longest])} or more"
        )


def check_workers(data_dir: str | Path, split: str, count: int, world: int) -> None:
    """A batch-list task gives each of ``world`` workers whole batches: it needs that many."""
    if count < world:
        raise PreflightError(
            f"the {split!r} split in {data_dir} has {count} examples, too few for {world} "
            "workers (each takes whole batches)"
        )


def first_batch(sizes: np.ndarray, batch_size: int, max_tokens: int) -> list[int]:
    """The indices of a first batch in file order: as many leading examples as fit
    ``batch_size`` sentences and ``max_tokens`` padded tokens (0: no limit of that kind)."""
    ids: list[int] = []
    longest = 0
    for i, size in enumerate(sizes[: batch_size or max_tokens].tolist()):
        longest = max(longest, size)
        if ids and max_tokens > 0 and (len(ids) + 1) * longest > max_tokens:
            break
        ids.append(i)
    return ids


def _check_names(cfg: TrainConfig) -> None:
    from rnnkit.training.criteria import CRITERION_REGISTRY
    from rnnkit.training.optim import LR_SCHEDULER_REGISTRY, OPTIMIZER_REGISTRY

    OPTIMIZER_REGISTRY.entry(cfg.optimizer)
    LR_SCHEDULER_REGISTRY.entry(cfg.lr_scheduler)
    CRITERION_REGISTRY.entry(cfg.criterion)


def _check_metric(cfg: TrainConfig, task: Task) -> None:
    """``--best-checkpoint-metric`` must be one validation reports."""
    metrics: Collection[str] = task.valid_metrics(cfg)
    metric = cfg.best_checkpoint_metric
    if metric in metrics:
        return
    hint = suggest(metric, sorted(metrics))
    if metric == "bleu" and callable(getattr(task, "bleu", None)):
        hint = "; BLEU is measured with --eval-bleu"
    raise PreflightError(
        f"--best-checkpoint-metric {metric}: validation of task {task.name!r} reports "
        f"{', '.join(sorted(metrics))}{hint}"
    )


def check_run(cfg: TrainConfig, task: Task, world: int = 1) -> None:
    """Everything about a run with options ``cfg`` on ``task``'s data that needs no training,
    for ``world`` workers; raises a one-line :class:`PreflightError`."""
    try:
        _check_names(cfg)
        if cfg.eval_bleu and not callable(getattr(task, "bleu", None)):
            raise PreflightError(f"--eval-bleu: task {task.name!r} does not decode to text")
        _check_metric(cfg, task)
        task.check_options(cfg)
        for shard in shards.train_tasks(task):  # the train split of every data shard
            shard.check_split("train", cfg, train=True, world=world)
        for split in valid_splits(cfg):
            task.check_split(split, cfg, train=False, world=world)
    except PreflightError:
        raise
    except RnnkitError as e:
        raise PreflightError(str(e)) from None


def check_launch(
    cfg: TrainConfig,
    task: Task,
    arch: str,
    model_layers: list[Mapping[str, Any] | None],
    save_dir: Path,
    given: Collection[str] | None,
    world: int,
) -> None:
    """What a launcher checks before it starts ``world`` workers: the model options, the
    resume from ``save_dir`` (as :func:`~rnnkit.training.run.build_run` will plan it), and
    :func:`check_run` with the options the workers will run with."""
    from rnnkit.training.lock import SaveDirLock
    from rnnkit.training.run import pick_device
    from rnnkit.training.start import find_start, plan_start

    if pick_device(cfg.device).type == "cuda" and torch.cuda.device_count() < world:
        raise PreflightError(
            f"{world} workers need {world} GPUs (one each); this machine has "
            f"{torch.cuda.device_count()}"
        )
    SaveDirLock(save_dir).check_free()  # refused before any worker starts
    # resumed, restored or fine-tuned as build_run will
    start = find_start(cfg, save_dir)
    cfg, model_layers, _ = plan_start(cfg, given, task, arch, model_layers, start)
    try:
        with torch.device("meta"):  # the options are checked; no memory is allocated
            task.build_model(arch, *model_layers)
    except RnnkitError:
        raise
    except Exception:  # noqa: BLE001 - an op without a meta kernel: the workers build it for real
        pass
    check_run(cfg, task, world)
