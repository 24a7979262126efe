"""The training loop: ``fit`` runs epochs of updates with validation, checkpoints and resume.

Kept as plain functions over a small :class:`Run` record (nanoGPT's shape, not a Trainer class):
``train_update`` does one update from ``--update-freq`` batches, ``validate`` measures every
validation split, ``save`` writes the checkpoints, ``fit`` ties them together. A run resumes
from ``checkpoint_last.pt`` by default and continues the exact data position, carried hidden
state, RNG, optimizer and LR schedule. SIGINT/SIGTERM finish the current update, write
``checkpoint_last.pt`` and raise :class:`TrainingInterrupted` (exit 130/143).

Under torchrun every worker runs this same loop on its shard of the data
(:mod:`rnnkit.training.distributed`). Gradients are summed over workers and micro-batches and
divided by the global token (or sequence) count, so W workers × B rows make the same update as
one worker × W·B rows. One all-reduce per update sums the loss statistics and every worker's
votes to stop (a signal, the time budget), so all workers stop after the same update. Only
rank 0 writes checkpoints, logs and progress.

When a worker dies, torchrun's agent SIGTERMs the others; they are then in, or about to enter,
a collective with the dead one, which fails at once (gloo and NCCL see the closed connection),
so they exit with :class:`~rnnkit.training.distributed.WorkerLost` rather than waiting
``--ddp-timeout``, and write nothing: every save gathers from all workers first, and its files
are written by temp file + rename. Under ``--max-restarts`` the restarted workers resume from
``checkpoint_last.pt``, redoing the updates since it was written (``--save-interval-updates``
bounds them).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnkit.data import shards
from rnnkit.errors import RnnkitError
from rnnkit.io import writing
from rnnkit.reporting import get_reporter
from rnnkit.training import distributed, preflight
from rnnkit.training.logs import TrainLog, log_model, training_logs
from rnnkit.training.optim import set_lr
from rnnkit.training.rng import lent_process_state
from rnnkit.training.run import Progress, Run, build_run, pick_device, save
from rnnkit.training.update import averaged_weights, train_step, train_update

if TYPE_CHECKING:
    from rnnkit.tasks.base import Shard, TrainIterator

__all__ = [  # build_run and pick_device live in rnnkit.training.run; imported from here too
    "Progress", "Run", "TrainingInterrupted", "averaged_weights", "build_run", "fit",
    "pick_device", "train_step", "train_update", "validate",
]  # fmt: skip


class TrainingInterrupted(RnnkitError):
    """Raised after a signal once ``checkpoint_last.pt`` is safely written."""

    def __init__(self, signum: int, path: Path) -> None:
        super().__init__(
            f"interrupted by signal {signum}; progress saved to {path} (run again to resume)"
        )
        self.exit_code = 128 + signum


class MetricsLog:
    """Appends one JSON object per event to ``train_log.jsonl`` (rank 0; None writes nothing)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, **record: Any) -> None:
        if self.path is None:
            return
        line = (json.dumps({"time": round(time.time(), 3), **record}) + "\n").encode("utf-8")
        # Unbuffered, so a full disk is seen here and the half-written line can be cut off.
        with writing(self.path), open(self.path, "ab", buffering=0) as f:
            end = f.seek(0, os.SEEK_END)
            try:
                view = memoryview(line)
                while view:
                    view = view[f.write(view) :]
            except OSError:
                f.truncate(end)
                raise


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


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_votes(caught: list[int]) -> list[float]:
    return [float(s in caught) for s in _SIGNALS]


def _adopt(votes: Sequence[float], caught: list[int]) -> bool:
    """Take the signals other workers voted for as this worker's own; True if any was voted.

    The answer comes from the summed ``votes`` alone, never from ``caught``: a signal can land
    while this worker waits in the all-reduce, after it voted, and a worker that stopped for it
    alone would leave the others waiting in their next collective (until torchrun kills them).
    Such a signal stays in ``caught`` and is voted for at the next update.
    """
    voted = [s for s, n in zip(_SIGNALS, votes, strict=False) if n > 0]
    caught.extend(s for s in voted if s not in caught)
    return bool(voted)


def _agree_on_signals(caught: list[int]) -> bool:
    """True on every worker if any worker caught a signal (signals reach workers at odd times)."""
    return _adopt(distributed.all_reduce_sum(_signal_votes(caught)), caught)


def _shard() -> Shard:
    return (distributed.rank(), distributed.world_size())


def _evaluate(run: Run, split: str) -> dict[str, float]:
    """The task may split the work by ``shard`` (and all-reduce), or evaluate it all."""
    return run.task.evaluate(run.model, split, run.cfg, run.device, shard=_shard())


def validate(run: Run) -> dict[str, dict[str, float]]:
    """Evaluate every ``--valid-subset`` split; the first one's loss picks the best checkpoint.

    Every worker gets rank 0's numbers, so best checkpoint, patience and LR decay agree.
    """
    results = {}
    with averaged_weights(run):
        for split in run.cfg.valid_subset.split(","):
            with get_reporter().progress(f"validating {split}", lines=False):  # on a terminal
                results[split] = _evaluate(run, split)
    return distributed.broadcast_object(results)


def after_validation(run: Run, results: dict[str, dict[str, float]], log: TrainLog) -> bool:
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
    run.validated = value  # the next save files it among --keep-best-checkpoints
    better = (lambda a, b: a > b) if cfg.maximize_best_checkpoint_metric else (lambda a, b: a < b)
    is_best = p.best is None or better(value, p.best)
    if is_best:
        p.best, p.bad_validations = value, 0
    else:
        p.bad_validations += 1
    for split, m in results.items():
        best = is_best and split == next(iter(results))
        log.write("valid", best=best, split=split, epoch=p.epoch, updates=p.updates, **m)
    return is_best


def finished(run: Run) -> str | None:
    """Why the run has nothing left to do (``--max-update``, ``--max-epoch`` or ``--max-hours``
    reached, ``--patience`` exhausted), or None while it has."""
    cfg, p = run.cfg, run.progress
    if cfg.max_update > 0 and p.updates >= cfg.max_update:
        return f"--max-update {cfg.max_update} reached (update {p.updates})"
    if cfg.max_epoch > 0 and p.epoch > cfg.max_epoch:
        return f"--max-epoch {cfg.max_epoch} reached"
    if cfg.max_hours > 0 and p.wall >= cfg.max_hours * 3600:
        return f"--max-hours {cfg.max_hours:g} reached ({p.wall / 3600:.2f} hours)"
    if cfg.patience > 0 and p.bad_validations >= cfg.patience:
        return f"--patience {cfg.patience} exhausted ({p.bad_validations} validations not better)"
    return None


def _done(run: Run) -> bool:
    return finished(run) is not None


def _train_iterator(run: Run) -> TrainIterator:
    """This worker's iterator over the epoch; every worker must get as many batches."""
    task = shards.train_task(run.task, run.progress.epoch)
    itr = task.train_iterator(
        run.cfg, run.model, run.device, run.data_rng, run.progress.iterator, shard=_shard()
    )
    sizes = distributed.all_gather_object(len(itr))
    if len(set(sizes)) > 1:
        raise RnnkitError(
            f"task {task.name!r} gave the workers unequal shards ({sizes} batches); DDP needs "
            "the same number of batches on every worker"
        )
    return itr


def _every(interval: int, updates: int) -> bool:
    return interval > 0 and updates % interval == 0


def _save_if_due(run: Run, itr: Any, log: TrainLog, stop: bool, end: bool = False) -> None:
    """After an update: validate (``--validate-interval-updates``, and at the run's ``end``)
    and write ``checkpoint_last.pt`` (also ``checkpoint_{epoch}_{updates}.pt`` every
    ``--save-interval-updates``; always when the run stops), as due; one write for all."""
    updates = run.progress.updates
    validating = end or _every(run.cfg.validate_interval_updates, updates)
    interval = _every(run.cfg.save_interval_updates, updates)
    if validating or interval or stop:
        is_best = validating and after_validation(run, validate(run), log)
        save(run, itr, epoch_end=False, is_best=is_best, interval=interval)


def train_epoch(run: Run, log: TrainLog, caught: list[int]) -> bool:
    """Run (the rest of) the current epoch; returns False, after writing ``checkpoint_last.pt``,
    when the run must stop (a signal, ``--max-update``, ``--stop-time-hours``, ``--max-hours``)
    before the epoch's validation."""
    cfg, p = run.cfg, run.progress
    itr = _train_iterator(run)
    loss_acc, tok_acc, t0 = 0.0, 0.0, time.monotonic()
    interval = Interval()
    batches = iter(itr)
    # Without a bar (a log file), the `train` records every --log-interval updates are the lines.
    with get_reporter().progress(f"epoch {p.epoch}", total=len(itr), lines=False) as bar:
        bar.done = itr.batches_done
        while group := list(itertools.islice(batches, cfg.update_freq)):
            hours = (time.monotonic() - run.started) / 3600
            out_of_time = cfg.stop_time_hours > 0 and hours >= cfg.stop_time_hours
            total_hours = log.tick() / 3600  # this run and the runs it resumed
            votes = [*_signal_votes(caught), float(out_of_time), total_hours]
            loss, ntok, votes = train_update(run, group, itr, votes)
            # The workers' mean clock, so their schedules and --max-hours agree.
            run.schedule.hours = votes[3] / distributed.world_size()
            loss_acc, tok_acc = loss_acc + loss, tok_acc + ntok
            interval.add(loss, ntok)
            nll = loss_acc / max(tok_acc, 1)
            speed = tok_acc / max(time.monotonic() - t0, 1e-9)
            bar.update(len(group), loss=nll, ppl=math.exp(min(nll, 100)), lr=run.schedule.lr,
                       tok_s=speed)  # fmt: skip
            log.tick()  # checkpoints carry the wall time up to their update
            if _every(cfg.log_interval, p.updates):
                log.write("train", epoch=p.epoch, updates=p.updates, **interval.take(run))
            # Decided from the summed votes, never from this worker's own `caught` alone.
            # The run's end (not a slice's): validate there, as fairseq does, so the best
            # checkpoint can be the fully annealed weights of a mid-epoch end.
            end = (cfg.max_update > 0 and p.updates >= cfg.max_update) or (
                cfg.max_hours > 0 and run.schedule.hours >= cfg.max_hours
            )
            stop = _adopt(votes[:2], caught) or votes[2] > 0 or end
            _save_if_due(run, itr, log, stop, end)
            if stop:
                return False
    if _agree_on_signals(caught):  # a signal after the last update's vote: keep the epoch
        save(run, itr, epoch_end=False, is_best=False)
        return False
    if tok_acc == 0:  # resumed after the epoch's last update: nothing trained here to log
        return True
    nll = loss_acc / max(tok_acc, 1)
    log.write(
        "train_epoch",
        epoch=p.epoch,
        updates=p.updates,
        loss=nll,
        ppl=math.exp(min(nll, 100)),
        seconds=time.monotonic() - t0,
        tokens=int(tok_acc),
    )
    return True


class Interval:
    """Loss and tokens since the last ``train`` record (fairseq's ``train_inner``)."""

    def __init__(self) -> None:
        self.loss, self.tokens, self.start = 0.0, 0.0, time.monotonic()

    def add(self, loss: float, tokens: float) -> None:
        self.loss, self.tokens = self.loss + loss, self.tokens + tokens

    def take(self, run: Run) -> dict[str, float]:
        """loss (nats per token), ppl, lr and tokens_per_s of the interval; then start anew."""
        nll = self.loss / max(self.tokens, 1)
        speed = self.tokens / max(time.monotonic() - self.start, 1e-9)
        self.loss, self.tokens, self.start = 0.0, 0.0, time.monotonic()
        lr = run.schedule.lr
        return {"loss": nll, "ppl": math.exp(min(nll, 100)), "lr": lr, "tokens_per_s": speed}


def fit(run: Run) -> Progress:
    """Train until ``--max-epoch``/``--max-update``/``--patience`` says stop; returns progress.

    A resumed run that is already finished says so and returns without training or validating.
    Otherwise, before the first update, :func:`~rnnkit.training.preflight.check_run` refuses
    what would fail later (a missing or empty split, batch options the data cannot fill, an
    unknown name) with a :class:`~rnnkit.training.preflight.PreflightError`. The save dir's
    lock is released at the end (:meth:`Run.close`). Under torchrun, a worker that loses the
    others (one died, raised or hung past ``--ddp-timeout``) raises
    :class:`~rnnkit.training.distributed.WorkerLost`. Torch's global generators (the run's
    dropout stream, ``run.rng``) and the reporter are the run's while it trains and the
    caller's again afterwards (:func:`~rnnkit.training.rng.lent_process_state`).
    """
    try:
        with lent_process_state(run):  # the run's dropout stream and reporter, given back after
            return _fit(run)
    except Exception as e:
        last = run.save_dir / "checkpoint_last.pt"
        saved = run.saved_updates
        lost = distributed.as_worker_lost(
            e,
            f"{last} (update {saved}) is intact: run the same command to resume"
            if saved is not None
            else "no checkpoint was written yet",
        )
        if lost is None:
            raise
        raise lost from None
    finally:
        run.close()


def _fit(run: Run) -> Progress:
    main = distributed.rank() == 0
    if main:
        run.save_dir.mkdir(parents=True, exist_ok=True)
    run.started = time.monotonic()
    jsonl = MetricsLog(run.save_dir / "train_log.jsonl" if main else None)
    with training_logs(run, jsonl) as log:
        return _train(run, log)


def _train(run: Run, log: TrainLog) -> Progress:
    p = run.progress
    reason = finished(run)
    if reason is not None:
        get_reporter().info(
            f"nothing left to do in {run.save_dir}: {reason}; raise it to train further"
        )
        return p
    # Missing or empty splits, batch options the data cannot fill, bad names: before any work.
    preflight.check_run(run.cfg, run.task, distributed.world_size())
    log_model(run)
    with catch_signals() as caught:
        while not _done(run):
            if not train_epoch(run, log, caught):  # it saved before stopping
                if _agree_on_signals(caught):
                    raise TrainingInterrupted(caught[0], run.save_dir / "checkpoint_last.pt")
                break
            results = validate(run)
            is_best = after_validation(run, results, log)
            first = results[run.cfg.valid_subset.split(",")[0]]
            set_lr(run.optimizer, run.schedule.step_epoch(p.epoch, first["loss"]))
            p.epoch = p.epoch + 1
            save(run, None, epoch_end=True, is_best=is_best)
            # A signal during the last epoch's validation or save: the run is complete anyway.
            if _agree_on_signals(caught) and not _done(run):
                raise TrainingInterrupted(caught[0], run.save_dir / "checkpoint_last.pt")
    return p
