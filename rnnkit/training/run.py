"""One training run as a record: building it (workers, seeds, model, optimizer), checkpointing
it and restoring it.

:class:`Run` holds everything a run needs; :func:`build_run` joins the workers under torchrun,
locks the save dir (rank 0, :mod:`rnnkit.training.lock`), seeds, builds the model, optimizer and
schedule, restores the checkpoint it starts from (:mod:`rnnkit.training.start`: its own,
``--restore-file``'s or ``--finetune-from-model``'s weights; read by rank 0 and handed to every
worker) with the options this run was given (:mod:`rnnkit.training.resume`) and wraps the model
for training (DDP, ``--compile``). :func:`checkpoint_state` turns the run into plain data,
gathering the iterator's and every worker's RNG state, so a run resumes exactly, also under
another world size; :func:`save` writes it on rank 0. The loop itself is
:mod:`rnnkit.training.loop`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rnnkit.config import to_dict
from rnnkit.errors import RnnkitError
from rnnkit.io import WriteError
from rnnkit.reporting import Reporter, get_reporter, using_reporter
from rnnkit.training import checkpoint as ckpt
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.criteria import CRITERION_REGISTRY, Criterion
from rnnkit.training.lock import SaveDirLock
from rnnkit.training.optim import LR_SCHEDULER_REGISTRY, OPTIMIZER_REGISTRY, set_lr
from rnnkit.training.precision import Precision, maybe_compile
from rnnkit.training.resume import ResumePlan, plan_resume
from rnnkit.training.retention import (
    best_checkpoint_name,
    is_among_best,
    prune_best_checkpoints,
    prune_epoch_checkpoints,
    prune_interval_checkpoints,
)
from rnnkit.training.rng import cuda_devices, seeded_rng_state
from rnnkit.training.start import Start, find_start, plan_start

if TYPE_CHECKING:
    from rnnkit.tasks.base import Task


@dataclass
class Progress:
    """Counters that a checkpoint carries so a resumed run continues where it stopped."""

    epoch: int = 1  # the epoch in progress (1-based)
    updates: int = 0
    best: float | None = None  # best value of --best-checkpoint-metric so far
    bad_validations: int = 0
    iterator: dict[str, Any] | None = None  # mid-epoch position; None at an epoch boundary
    wall: float = 0.0  # seconds of training wall time, summed over resumed runs


@dataclass
class Run:
    """Everything one training run holds."""

    cfg: TrainConfig
    task: Task
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
    lock: SaveDirLock | None = None  # rank 0's hold on save_dir, released by close()
    # This worker's dropout stream (ckpt.rng_state()'s form); None while fit has it in torch's
    # global generators, the only ones dropout draws from (rnnkit.training.rng).
    rng: dict[str, Any] | None = None
    reporter: Reporter = field(default_factory=get_reporter)  # quiet on workers but rank 0
    # Where a fine-tuned or restored run came from (rnnkit.training.start), kept in checkpoints.
    started_from: dict[str, str] | None = None
    # The validation value the next save() files as a best-K checkpoint (--keep-best-checkpoints)
    validated: float | None = None

    def close(self) -> None:
        """Release the save dir (fit does at its end; the process's exit does in any case)."""
        if self.lock is not None:
            self.lock.release()


def pick_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; an unavailable cuda is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RnnkitError(f"--device {name}: CUDA is not available on this machine")
    return dev


def build_run(
    cfg: TrainConfig,
    task: Task,
    arch: str,
    model_layers: list,
    save_dir: Path,
    given: Collection[str] | None = None,
    reporter: Reporter | None = None,
) -> Run:
    """Join the workers (under torchrun), lock ``save_dir``, seed, build model/optimizer/
    schedule, restore ``restore_file`` if present, and wrap the model for training (DDP,
    ``--compile``).

    ``given`` names the fields of ``cfg`` given this time (command line, ``--config``); on
    resume they override the checkpoint's options, the others are the checkpoint's
    (:mod:`rnnkit.training.resume`). None: every field of ``cfg`` was given.

    Joining torchrun's group aside, nothing process-wide changes: ``--threads`` is the command
    line's to set; the weights are drawn from ``cfg.seed`` in forked generators and the dropout
    stream is kept in ``run.rng``; ``reporter`` (default: the one in use; a quiet copy on workers
    but rank 0) is used while building and kept in ``run.reporter``. ``fit`` borrows both
    process-wide only while it trains (:func:`~rnnkit.training.rng.lent_process_state`).
    """
    device = distributed.setup(pick_device(cfg.device), cfg.ddp_timeout)
    reporter = reporter or get_reporter()
    if distributed.rank() > 0:
        reporter = reporter.quieted()  # rank 0 alone logs and shows progress
    with using_reporter(reporter):
        run = _build(cfg, task, arch, model_layers, save_dir, given, device)
        run.reporter = reporter
        run.train_model = maybe_compile(distributed.wrap(run.model, device), cfg.compile, device)
    return run


def _build(
    cfg: TrainConfig,
    task: Task,
    arch: str,
    model_layers: list,
    save_dir: Path,
    given: Collection[str] | None,
    device: torch.device,
) -> Run:
    """build_run's work under the save dir's lock: a fresh or restored run."""
    lock = _lock_save_dir(save_dir)
    try:
        start = _read_start(cfg, save_dir)
        cfg, model_layers, plan = plan_start(cfg, given, task, arch, model_layers, start)
        run = _assemble(cfg, task, arch, model_layers, save_dir, device)
        run.lock = lock
        run.started_from = start.origin
        if start.kind == "finetune":
            _finetune(run, start)
        elif plan is not None and start.state is not None:
            for line in plan.messages:
                get_reporter().info(line)
            restore_run(run, start.state, plan, start.path)
            get_reporter().info(
                f"resumed from {start.path}: epoch {run.progress.epoch}, "
                f"update {run.progress.updates}"
            )
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return run


def _assemble(
    cfg: TrainConfig,
    task: Task,
    arch: str,
    model_layers: list,
    save_dir: Path,
    device: torch.device,
) -> Run:
    """A fresh run: seeded model, optimizer, schedule and criterion."""
    rank = distributed.rank()
    with torch.random.fork_rng(devices=cuda_devices()):
        torch.manual_seed(cfg.seed)  # the same initial weights on every worker
        model, model_cfg = task.build_model(arch, *model_layers)
        rng = ckpt.rng_state()  # rank 0's dropout continues the stream of the weights
    model.to(device)
    optimizer = OPTIMIZER_REGISTRY.get(cfg.optimizer)(model.parameters(), cfg)
    schedule = LR_SCHEDULER_REGISTRY.get(cfg.lr_scheduler)(cfg)
    criterion = CRITERION_REGISTRY.get(cfg.criterion)(
        ignore_index=task.dictionary.pad_index, label_smoothing=cfg.label_smoothing
    )
    run = Run(cfg, task, arch, model, model_cfg, optimizer, schedule, criterion, device, save_dir)
    run.precision = Precision(cfg.amp, device)
    run.data_rng.manual_seed(cfg.seed)  # one data order for all workers
    run.rng = rng if rank == 0 else seeded_rng_state(cfg.seed + rank)  # own dropout masks
    return run


def _on_rank0(work: Callable[[], Any]) -> Any:
    """Run ``work`` on rank 0 only and return its result there (None elsewhere); an
    :class:`RnnkitError` it raises is raised on every worker, so all stop with the same line."""
    result, error = None, None
    if distributed.rank() == 0:
        try:
            result = work()
        except RnnkitError as e:
            error = e
    error = distributed.broadcast_object(error)
    if error is not None:
        raise error
    return result


def _lock_save_dir(save_dir: Path) -> SaveDirLock | None:
    """Rank 0 locks ``save_dir`` (the only worker that writes there)."""
    return _on_rank0(SaveDirLock(save_dir).acquire)


def _read_start(cfg: TrainConfig, save_dir: Path) -> Start:
    """Rank 0 reads the checkpoint the run starts from (:func:`~rnnkit.training.start.
    find_start`) and hands it to every worker (no shared disk needed)."""
    start = distributed.broadcast_object(_on_rank0(lambda: find_start(cfg, save_dir)))
    return start or Start()  # None: a worker of no group (nothing was broadcast)


def _finetune(run: Run, start: Start) -> None:
    """Load the weights of ``--finetune-from-model``; everything else stays fresh."""
    assert start.state is not None and start.path is not None
    _check_model(run, start.state, start.path)
    ckpt.load_weights(run.model, start.state["model_state"], start.path)
    get_reporter().info(
        f"fine-tuning from {start.path}: its weights; a fresh optimizer, schedule and counters"
    )


def restore_run(
    run: Run, state: dict[str, Any], plan: ResumePlan | None = None, source: Path | None = None
) -> None:
    """Load weights, optimizer, schedule, counters and RNG from a checkpoint (read from
    ``source``, default ``--restore-file`` in the save dir), as ``plan`` (from
    :func:`~rnnkit.training.resume.plan_resume`) says; without one, the run's options must be
    the checkpoint's."""
    source = source or run.save_dir / run.cfg.restore_file
    if plan is None:
        plan = plan_resume(run.cfg, None, run.task, run.arch, [], state, source)
    _check_model(run, state, source)
    ckpt.load_weights(run.model, state["model_state"], source)
    if not plan.fresh_optimizer:
        _load_optimizer(run, state["optimizer"])
    run.schedule.hours = state["progress"].get("wall", 0.0) / 3600  # for --max-hours
    if not plan.fresh_schedule:
        run.schedule.load_state_dict(state["schedule"])
    if plan.new_lr or plan.fresh_schedule:
        progress = state["progress"]
        run.schedule.rebase(progress["epoch"], progress["updates"])
    set_lr(run.optimizer, run.schedule.lr)
    if run.precision is not None:
        run.precision.load_state_dict(state.get("amp_scaler"))
    _restore_progress(run, state, plan)
    if run.started_from is None:  # a resumed run keeps its origin; a restore sets its own
        run.started_from = state.get("started_from")


def _check_model(run: Run, state: Mapping[str, Any], source: Path) -> None:
    """The model built must be the checkpoint's but for its ``resumable`` fields."""
    saved, mine = state.get("model_config") or {}, to_dict(run.model_cfg)
    fields = dataclasses.fields(run.model_cfg)
    fixed = {f.name for f in fields if not f.metadata.get("resumable", False)}
    if state.get("arch") != run.arch or any(saved.get(k) != mine[k] for k in fixed if k in saved):
        raise RnnkitError(
            f"{source} was trained with another architecture or model options; "
            "use another --save-dir or --reset"
        )


def _load_optimizer(run: Run, saved: dict[str, Any]) -> None:
    """Load the optimizer's state, keeping the hyperparameters this run was built with (torch
    would put the checkpoint's back: a new --weight-decay or --momentum would be ignored)."""
    mine = [{k: v for k, v in g.items() if k != "params"} for g in run.optimizer.param_groups]
    try:
        run.optimizer.load_state_dict(saved)
    except (KeyError, ValueError, IndexError) as e:
        raise RnnkitError(
            f"the optimizer state in --save-dir does not fit --optimizer {run.cfg.optimizer} "
            f"({type(e).__name__}: {str(e)[:80]}); add --reset-optimizer to start it afresh"
        ) from None
    for group, hyper in zip(run.optimizer.param_groups, mine, strict=True):
        group.update(hyper)


def _restore_progress(run: Run, state: dict[str, Any], plan: ResumePlan) -> None:
    """Counters, best value, and the RNG states of every worker."""
    progress = dict(state["progress"])
    if "best_loss" in progress:  # checkpoints written before --best-checkpoint-metric
        progress["best"] = progress.pop("best_loss")
    run.progress = Progress(**progress)
    if plan.forget_best:
        run.progress.best, run.progress.bad_validations = None, 0
    if plan.fresh_data_position:
        run.progress.iterator = None
    run.saved_updates = run.progress.updates
    # Each worker continues its own dropout stream; a worker the old run did not have starts one.
    rank, rngs = distributed.rank(), state.get("rng_ranks") or [state["rng"]]
    if rank < len(rngs):  # CUDA states a CPU run did not save stay as seeded
        run.rng = {**(run.rng or {}), **rngs[rank]}
    else:
        run.rng = seeded_rng_state(run.cfg.seed + rank + run.progress.updates)
    run.data_rng.set_state(state["data_rng"])


def checkpoint_state(run: Run, itr: Any = None) -> dict[str, Any]:
    """The run as plain data (see :mod:`rnnkit.training.checkpoint`), mid-epoch at ``itr``.

    Every worker must call it: the iterator's and the RNG states are gathered from all of them.
    """
    run.progress.iterator = None if itr is None else itr.state_dict()
    rngs = distributed.all_gather_object(ckpt.rng_state() if run.rng is None else run.rng)
    state = {
        "task": run.task.name,
        "arch": run.arch,
        "model": type(run.model).model_name,
        "model_config": to_dict(run.model_cfg),
        "train_config": to_dict(run.cfg),
        **run.task.checkpoint_data(),
        "model_state": run.model.state_dict(),
        **({} if run.cfg.no_save_optimizer_state else {"optimizer": run.optimizer.state_dict()}),
        "schedule": run.schedule.state_dict(),
        "progress": dataclasses.asdict(run.progress),
        "rng": rngs[0],
        "data_rng": run.data_rng.get_state(),
    }
    if len(rngs) > 1:
        state["rng_ranks"] = rngs
    if run.started_from is not None:
        state["started_from"] = run.started_from
    if run.precision is not None and run.precision.state_dict() is not None:
        state["amp_scaler"] = run.precision.state_dict()
    return state


def save(run: Run, itr: Any, epoch_end: bool, is_best: bool, interval: bool = False) -> None:
    """Write ``checkpoint_last.pt`` and the other files due (:func:`_due_files`), then prune as
    ``--keep-last-epochs``, ``--keep-interval-updates`` and ``--keep-best-checkpoints`` say.

    Called on every worker (the state is gathered from all); only rank 0 writes, each file
    by temp file + rename, so a worker killed mid-write leaves the previous file intact.
    """
    state = checkpoint_state(run, itr)
    before, run.saved_updates = run.saved_updates, run.progress.updates
    validated, run.validated = run.validated, None
    if distributed.rank() != 0:
        return
    cfg, last = run.cfg, run.save_dir / "checkpoint_last.pt"
    names = _due_files(run, epoch_end, is_best, interval, validated)
    try:
        ckpt.save_checkpoint(state, last)
        for name in names:
            ckpt.save_checkpoint(state, run.save_dir / name)
    except WriteError as e:  # a full disk: say which checkpoint the next run resumes from
        if e.path == str(last):
            run.saved_updates = before
        raise e.with_note(_intact(last, run.saved_updates)) from None
    if epoch_end and not cfg.no_epoch_checkpoints and cfg.keep_last_epochs >= 0:
        prune_epoch_checkpoints(run.save_dir, run.progress.epoch - 1, cfg.keep_last_epochs)
    if interval and cfg.keep_interval_updates >= 0:
        prune_interval_checkpoints(run.save_dir, cfg.keep_interval_updates)
    if validated is not None and cfg.keep_best_checkpoints > 0:
        metric, maximize = cfg.best_checkpoint_metric, cfg.maximize_best_checkpoint_metric
        prune_best_checkpoints(run.save_dir, metric, cfg.keep_best_checkpoints, maximize)


def _due_files(
    run: Run, epoch_end: bool, is_best: bool, interval: bool, validated: float | None
) -> list[str]:
    """The files besides ``checkpoint_last.pt`` this save writes: ``checkpoint_best.pt``,
    ``checkpoint{epoch}.pt``, ``checkpoint_{epoch}_{updates}.pt`` (``interval``) and
    ``checkpoint.best_{metric}_{value}.pt`` (a ``validated`` value among the K best)."""
    cfg, p = run.cfg, run.progress
    names = ["checkpoint_best.pt"] if is_best else []
    if epoch_end and not cfg.no_epoch_checkpoints:
        names.append(f"checkpoint{p.epoch - 1}.pt")
    if interval:
        names.append(f"checkpoint_{p.epoch}_{p.updates}.pt")
    metric, keep = cfg.best_checkpoint_metric, cfg.keep_best_checkpoints
    if validated is not None and is_among_best(
        run.save_dir, metric, validated, keep, cfg.maximize_best_checkpoint_metric
    ):
        names.append(best_checkpoint_name(metric, validated))
    return names


def _intact(last: Path, updates: int | None) -> str:
    """What is left to resume from when a checkpoint write fails."""
    if updates is None:
        return "no checkpoint was saved yet"
    return f"{last.name} (update {updates}) is intact"
