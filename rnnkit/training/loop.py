"""The training loop: ``fit`` runs epochs of updates with validation, checkpoints and resume.

Kept as plain functions over a small :class:`Run` record (nanoGPT's shape, not a Trainer class):
``train_step`` does one update, ``validate`` measures every validation split, ``save`` writes the
checkpoints, ``fit`` ties them together. A run resumes from ``checkpoint_last.pt`` by default
and continues the exact data position, carried hidden state, RNG, optimizer and LR schedule.
SIGINT/SIGTERM finish the current update, write ``checkpoint_last.pt`` and raise
:class:`TrainingInterrupted` (exit 130/143).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import to_dict
from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.config import TrainConfig
from rnnkit.training.criteria import CRITERION_REGISTRY, Criterion
from rnnkit.training.optim import LR_SCHEDULER_REGISTRY, OPTIMIZER_REGISTRY, set_lr


class TrainingInterrupted(RnnkitError):
    """Raised after a signal once ``checkpoint_last.pt`` is safely written."""

    def __init__(self, signum: int, path: Path) -> None:
        super().__init__(
            f"interrupted by signal {signum}; progress saved to {path} (run again to resume)"
        )
        self.exit_code = 128 + signum


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
    model: torch.nn.Module
    model_cfg: Any
    optimizer: torch.optim.Optimizer
    schedule: Any
    criterion: Criterion
    device: torch.device
    save_dir: Path
    progress: Progress = field(default_factory=Progress)
    data_rng: torch.Generator = field(default_factory=torch.Generator)
    started: float = field(default_factory=time.monotonic)


def pick_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; an unavailable cuda is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RnnkitError(f"--device {name}: CUDA is not available on this machine")
    return dev


def build_run(cfg: TrainConfig, task: Any, arch: str, model_layers: list, save_dir: Path) -> Run:
    """Seed, build model/optimizer/schedule, and restore ``restore_file`` if present."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model, model_cfg = task.build_model(arch, *model_layers)
    model.to(device)
    optimizer = OPTIMIZER_REGISTRY.get(cfg.optimizer)(model.parameters(), cfg)
    schedule = LR_SCHEDULER_REGISTRY.get(cfg.lr_scheduler)(cfg)
    criterion = CRITERION_REGISTRY.get(cfg.criterion)(
        ignore_index=task.dictionary.pad_index, label_smoothing=cfg.label_smoothing
    )
    run = Run(cfg, task, arch, model, model_cfg, optimizer, schedule, criterion, device, save_dir)
    run.data_rng.manual_seed(cfg.seed)
    restore = save_dir / cfg.restore_file
    if restore.is_file() and not cfg.reset:
        restore_run(run, ckpt.load_checkpoint(restore))
        get_reporter().info(
            f"resumed from {restore}: epoch {run.progress.epoch}, update {run.progress.updates}"
        )
    return run


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
    progress = dict(state["progress"])
    if "best_loss" in progress:  # checkpoints written before --best-checkpoint-metric
        progress["best"] = progress.pop("best_loss")
    run.progress = Progress(**progress)
    ckpt.set_rng_state(state["rng"])
    run.data_rng.set_state(state["data_rng"])


def checkpoint_state(run: Run) -> dict[str, Any]:
    """The run as plain data (see :mod:`rnnkit.training.checkpoint`)."""
    return {
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
        "rng": ckpt.rng_state(),
        "data_rng": run.data_rng.get_state(),
    }


def save(run: Run, epoch_end: bool, is_best: bool) -> None:
    """Write ``checkpoint_last.pt`` (and ``checkpoint{epoch}.pt``/``_best.pt`` as due)."""
    state = checkpoint_state(run)
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


class MetricsLog:
    """Appends one JSON object per event to ``train_log.jsonl`` in the save dir."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, **record: Any) -> None:
        record = {"time": round(time.time(), 3), **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def catch_signals() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM instead of dying, so the loop can stop at an update boundary."""
    caught: list[int] = []
    handler = lambda signum, frame: caught.append(signum)  # noqa: E731
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train_step(run: Run, batch: Any, itr: Any) -> tuple[float, int]:
    """One update: forward, backward, global-norm clipping, optimizer step.

    Returns the summed loss and the number of target tokens. A non-finite loss stops the run
    before the step, so the last checkpoint stays the last good one.
    """
    run.model.train()
    loss_sum, ntokens, nsentences = run.task.loss(run.model, batch, itr, run.criterion)
    if not math.isfinite(loss_sum.item()):
        raise RnnkitError(
            f"loss is {loss_sum.item()} at update {run.progress.updates + 1} (epoch "
            f"{run.progress.epoch}); stopped, last good checkpoint kept in {run.save_dir}"
        )
    denom = ntokens if run.cfg.loss_average == "tokens" else nsentences
    run.optimizer.zero_grad(set_to_none=True)
    (loss_sum / denom).backward()
    if run.cfg.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.clip_norm)
    lr = run.schedule.lr * getattr(batch, "scale", 1.0)
    set_lr(run.optimizer, lr)
    run.optimizer.step()
    run.progress.updates += 1
    run.schedule.step_update(run.progress.updates)
    return loss_sum.item(), ntokens


@contextlib.contextmanager
def averaged_weights(run: Run) -> Iterator[None]:
    """With ``asgd``, evaluate the Polyak-averaged weights, then put the raw ones back."""
    if not isinstance(run.optimizer, torch.optim.ASGD):
        yield
        return
    saved = []
    with torch.no_grad():
        for p in run.model.parameters():
            ax = run.optimizer.state.get(p, {}).get("ax")
            if ax is not None:
                saved.append((p, p.detach().clone()))
                p.copy_(ax)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, raw in saved:
                p.copy_(raw)


def validate(run: Run) -> dict[str, dict[str, float]]:
    """Evaluate every ``--valid-subset`` split; the first one's loss picks the best checkpoint."""
    with averaged_weights(run):
        return {
            split: run.task.evaluate(run.model, split, run.cfg, run.device)
            for split in run.cfg.valid_subset.split(",")
        }


def after_validation(run: Run, results: dict[str, dict[str, float]], log: MetricsLog) -> bool:
    """Record a validation, update best/patience; returns whether this is the best so far.

    The first ``--valid-subset`` split's ``--best-checkpoint-metric`` decides (lower is better
    unless ``--maximize-best-checkpoint-metric``).
    """
    cfg, p = run.cfg, run.progress
    first = results[cfg.valid_subset.split(",")[0]]
    metric = cfg.best_checkpoint_metric
    if metric not in first:
        raise RnnkitError(
            f"--best-checkpoint-metric {metric}: validation reports {', '.join(first)}"
        )
    value = first[metric]
    better = (lambda a, b: a > b) if cfg.maximize_best_checkpoint_metric else (lambda a, b: a < b)
    is_best = p.best is None or better(value, p.best)
    if is_best:
        p.best, p.bad_validations = value, 0
    else:
        p.bad_validations += 1
    for split, m in results.items():
        log.write(event="valid", split=split, epoch=p.epoch, updates=p.updates, **m)
        shown = " | ".join(f"{k} {_fmt(v)}" for k, v in m.items() if k != "tokens")
        get_reporter().info(
            f"epoch {p.epoch} | update {p.updates} | {split} {shown}"
            + (" | best" if is_best and split == next(iter(results)) else "")
        )
    return is_best


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def _out_of_updates(run: Run) -> bool:
    """Update or wall-time budget spent (checked after each update, so a run always advances)."""
    cfg = run.cfg
    hours = (time.monotonic() - run.started) / 3600
    return (cfg.max_update > 0 and run.progress.updates >= cfg.max_update) or (
        cfg.stop_time_hours > 0 and hours >= cfg.stop_time_hours
    )


def _done(run: Run) -> bool:
    cfg, p = run.cfg, run.progress
    return (
        (cfg.max_update > 0 and p.updates >= cfg.max_update)
        or (cfg.max_epoch > 0 and p.epoch > cfg.max_epoch)
        or (cfg.patience > 0 and p.bad_validations >= cfg.patience)
    )


def train_epoch(run: Run, log: MetricsLog, caught: list[int]) -> bool:
    """Run (the rest of) the current epoch; returns False when the run must stop mid-epoch."""
    cfg, p = run.cfg, run.progress
    itr = run.task.train_iterator(cfg, run.model, run.device, run.data_rng, p.iterator)
    loss_acc, tok_acc, t0, t_log = 0.0, 0, time.monotonic(), time.monotonic()
    reporter = get_reporter()
    with reporter.progress(f"epoch {p.epoch}", total=len(itr)) as bar:
        bar.done = itr.batches_done
        for batch in itr:
            loss, ntok = train_step(run, batch, itr)
            loss_acc, tok_acc = loss_acc + loss, tok_acc + ntok
            nll = loss_acc / max(tok_acc, 1)
            speed = tok_acc / max(time.monotonic() - t0, 1e-9)
            bar.update(1, loss=nll, ppl=math.exp(min(nll, 100)), lr=run.schedule.lr, tok_s=speed)
            if time.monotonic() - t_log >= cfg.log_interval:
                log.write(
                    event="train",
                    epoch=p.epoch,
                    updates=p.updates,
                    loss=nll,
                    ppl=math.exp(min(nll, 100)),
                    lr=run.schedule.lr,
                    tokens_per_s=speed,
                )
                t_log = time.monotonic()
            p.iterator = itr.state_dict()
            interval = cfg.validate_interval_updates
            if interval > 0 and p.updates % interval == 0:
                save(run, epoch_end=False, is_best=after_validation(run, validate(run), log))
            if caught or _out_of_updates(run):
                save(run, epoch_end=False, is_best=False)
                return False
    log.write(
        event="train_epoch",
        epoch=p.epoch,
        updates=p.updates,
        loss=loss_acc / max(tok_acc, 1),
        seconds=time.monotonic() - t0,
        tokens=tok_acc,
    )
    return True


def fit(run: Run) -> Progress:
    """Train until ``--max-epoch``/``--max-update``/``--patience`` says stop; returns progress."""
    run.save_dir.mkdir(parents=True, exist_ok=True)
    run.started = time.monotonic()
    log = MetricsLog(run.save_dir / "train_log.jsonl")
    p = run.progress
    with catch_signals() as caught:
        while not _done(run):
            finished = train_epoch(run, log, caught)
            if caught:
                raise TrainingInterrupted(caught[0], run.save_dir / "checkpoint_last.pt")
            if not finished:
                break
            results = validate(run)
            is_best = after_validation(run, results, log)
            first = results[run.cfg.valid_subset.split(",")[0]]
            set_lr(run.optimizer, run.schedule.step_epoch(p.epoch, first["loss"]))
            p.epoch, p.iterator = p.epoch + 1, None
            save(run, epoch_end=True, is_best=is_best)
            if caught:
                raise TrainingInterrupted(caught[0], run.save_dir / "checkpoint_last.pt")
    return p
