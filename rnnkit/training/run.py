"""One training run as a record: building it (workers, seeds, model, optimizer), checkpointing
it and restoring it.

:class:`Run` holds everything a run needs; :func:`build_run` joins the workers under torchrun,
seeds, builds the model, optimizer and schedule, restores ``--restore-file`` (read by rank 0 and
handed to every worker) and wraps the model for training (DDP, ``--compile``).
:func:`checkpoint_state` turns the run into plain data, gathering the iterator's and every
worker's RNG state, so a run resumes exactly, also under another world size; :func:`save`
writes it on rank 0. The loop itself is :mod:`rnnkit.training.loop`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import to_dict
from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit.training import checkpoint as ckpt
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.criteria import CRITERION_REGISTRY, Criterion
from rnnkit.training.optim import LR_SCHEDULER_REGISTRY, OPTIMIZER_REGISTRY, set_lr
from rnnkit.training.precision import Precision, maybe_compile


@dataclass
class Progress:
    """Counters that a checkpoint carries so a resumed run continues where it stopped."""

    epoch: int = 1  # the epoch in progress (1-based)
    updates: int = 0
    best: float | None = None  # best value of --best-checkpoint-metric so far
    bad_validations: int = 0
    iterator: dict[str, Any] | None = None  # mid-epoch position; None at an epoch boundary


@dataclass
class Run:
    """Everything one training run holds."""

    cfg: TrainConfig
    task: Any
    arch: str
    model: torch.nn.Module  # the plain module: checkpoints, evaluation, the task's helpers
    model_cfg: Any
    optimizer: torch.optim.Optimizer
    schedule: Any
    criterion: Criterion
    device: torch.device
    save_dir: Path
    progress: Progress = field(default_factory=Progress)
    data_rng: torch.Generator = field(default_factory=torch.Generator)
    started: float = field(default_factory=time.monotonic)
    train_model: torch.nn.Module | None = None  # what task.loss calls: DDP-wrapped, compiled
    precision: Precision | None = None
    saved_updates: int | None = None  # updates in the newest checkpoint_last.pt (for messages)


def pick_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; an unavailable cuda is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RnnkitError(f"--device {name}: CUDA is not available on this machine")
    return dev


def build_run(cfg: TrainConfig, task: Any, arch: str, model_layers: list, save_dir: Path) -> Run:
    """Join the workers (under torchrun), seed, build model/optimizer/schedule, restore
    ``restore_file`` if present, and wrap the model for training (DDP, ``--compile``)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = distributed.setup(pick_device(cfg.device), cfg.ddp_timeout)
    rank = distributed.rank()
    if rank > 0:
        get_reporter().quiet = True  # rank 0 alone logs and shows progress
    torch.manual_seed(cfg.seed)  # the same initial weights on every worker
    model, model_cfg = task.build_model(arch, *model_layers)
    model.to(device)
    optimizer = OPTIMIZER_REGISTRY.get(cfg.optimizer)(model.parameters(), cfg)
    schedule = LR_SCHEDULER_REGISTRY.get(cfg.lr_scheduler)(cfg)
    criterion = CRITERION_REGISTRY.get(cfg.criterion)(
        ignore_index=task.dictionary.pad_index, label_smoothing=cfg.label_smoothing
    )
    run = Run(cfg, task, arch, model, model_cfg, optimizer, schedule, criterion, device, save_dir)
    run.precision = Precision(cfg.amp, device)
    run.data_rng.manual_seed(cfg.seed)  # one data order for all workers
    if rank > 0:
        torch.manual_seed(cfg.seed + rank)  # but dropout masks of their own
    state = _read_restore_file(cfg, save_dir)
    if state is not None:
        restore_run(run, state)
        get_reporter().info(
            f"resumed from {save_dir / cfg.restore_file}: epoch {run.progress.epoch}, "
            f"update {run.progress.updates}"
        )
    run.train_model = maybe_compile(distributed.wrap(model, device), cfg.compile, device)
    return run


def _read_restore_file(cfg: TrainConfig, save_dir: Path) -> dict[str, Any] | None:
    """Rank 0 reads ``--restore-file`` and hands it to every worker (no shared disk needed)."""
    restore = save_dir / cfg.restore_file
    found: Any = None
    if distributed.rank() == 0 and restore.is_file() and not cfg.reset:
        try:
            found = ckpt.load_checkpoint(restore)
        except RnnkitError as e:
            found = e
    found = distributed.broadcast_object(found)
    if isinstance(found, RnnkitError):
        raise found
    return found


def restore_run(run: Run, state: dict[str, Any]) -> None:
    """Load weights, optimizer, schedule, counters and RNG from a checkpoint."""
    if state.get("task") != run.task.name:
        raise RnnkitError(f"checkpoint is for task {state.get('task')!r}, not {run.task.name!r}")
    if state.get("model_config") != to_dict(run.model_cfg) or state.get("arch") != run.arch:
        raise RnnkitError(
            "the checkpoint in --save-dir was trained with another architecture or model options; "
            "use another --save-dir or --reset"
        )
    run.model.load_state_dict(state["model_state"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    set_lr(run.optimizer, run.schedule.lr)
    if run.precision is not None:
        run.precision.load_state_dict(state.get("amp_scaler"))
    progress = dict(state["progress"])
    if "best_loss" in progress:  # checkpoints written before --best-checkpoint-metric
        progress["best"] = progress.pop("best_loss")
    run.progress = Progress(**progress)
    run.saved_updates = run.progress.updates
    # Each worker continues its own dropout stream; a worker the old run did not have starts one.
    rank, rngs = distributed.rank(), state.get("rng_ranks") or [state["rng"]]
    ckpt.set_rng_state(rngs[rank] if rank < len(rngs) else state["rng"])
    if rank >= len(rngs):
        torch.manual_seed(run.cfg.seed + rank + run.progress.updates)
    run.data_rng.set_state(state["data_rng"])


def checkpoint_state(run: Run, itr: Any = None) -> dict[str, Any]:
    """The run as plain data (see :mod:`rnnkit.training.checkpoint`), mid-epoch at ``itr``.

    Every worker must call it: the iterator's and the RNG states are gathered from all of them.
    """
    run.progress.iterator = None if itr is None else itr.state_dict()
    rngs = distributed.all_gather_object(ckpt.rng_state())
    state = {
        "task": run.task.name,
        "arch": run.arch,
        "model": type(run.model).model_name,
        "model_config": to_dict(run.model_cfg),
        "train_config": to_dict(run.cfg),
        **run.task.checkpoint_data(),
        "model_state": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "schedule": run.schedule.state_dict(),
        "progress": dataclasses.asdict(run.progress),
        "rng": rngs[0],
        "data_rng": run.data_rng.get_state(),
    }
    if len(rngs) > 1:
        state["rng_ranks"] = rngs
    if run.precision is not None and run.precision.state_dict() is not None:
        state["amp_scaler"] = run.precision.state_dict()
    return state


def save(run: Run, itr: Any, epoch_end: bool, is_best: bool) -> None:
    """Write ``checkpoint_last.pt`` (and ``checkpoint{epoch}.pt``/``_best.pt`` as due).

    Called on every worker (the state is gathered from all); only rank 0 writes.
    """
    state = checkpoint_state(run, itr)
    run.saved_updates = run.progress.updates
    if distributed.rank() != 0:
        return
    last = run.save_dir / "checkpoint_last.pt"
    ckpt.save_checkpoint(state, last)
    if is_best:
        ckpt.save_checkpoint(state, run.save_dir / "checkpoint_best.pt")
    if epoch_end and not run.cfg.no_epoch_checkpoints:
        done = run.progress.epoch - 1
        ckpt.save_checkpoint(state, run.save_dir / f"checkpoint{done}.pt")
        if run.cfg.keep_last_epochs >= 0:
            for old in range(1, done - run.cfg.keep_last_epochs + 1):
                (run.save_dir / f"checkpoint{old}.pt").unlink(missing_ok=True)
