"""One optimizer update of a run, and evaluating with the averaged weights.

:func:`train_update` is the step :func:`rnnkit.training.loop.fit` repeats: ``--update-freq``
micro-batches forward and backward through the task's loss, one all-reduce of the loss
statistics (and of the workers' votes to stop), gradients normalized by the global token or
sequence count, clipped, stepped. :func:`averaged_weights` swaps in ASGD's Polyak averages
while validating.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from rnnkit.errors import RnnkitError
from rnnkit.training import distributed
from rnnkit.training.optim import set_lr
from rnnkit.training.precision import Precision
from rnnkit.training.run import Run


def train_update(
    run: Run, batches: Sequence[Any], itr: Any, votes: Sequence[float] = ()
) -> tuple[float, float, list[float]]:
    """One update from ``batches`` (``--update-freq`` micro-batches): forward and backward each
    (DDP syncs gradients on the last only), normalize by the global token or sequence count,
    clip the global gradient norm, step.

    ``votes`` are summed over workers in the same all-reduce as the loss statistics. Returns the
    summed loss and target tokens of all workers, and the summed votes. A non-finite loss stops
    the run before the step, so the last checkpoint stays the last good one.
    """
    # Not `train_model or model`: a compiled module refuses len(), so its truth value raises.
    model = run.train_model if run.train_model is not None else run.model
    precision = run.precision or Precision("none", run.device)
    run.model.train()
    run.optimizer.zero_grad(set_to_none=True)
    losses, ntokens, nsentences, lr_scale = [], 0, 0, 0.0
    for i, batch in enumerate(batches):
        sync = i == len(batches) - 1
        with contextlib.nullcontext() if sync else distributed.no_sync(model):
            with precision.autocast():
                loss, ntok, nsent = run.task.loss(model, batch, itr, run.criterion)
            precision.backward(loss)
        losses.append(loss.detach())
        ntokens, nsentences = ntokens + ntok, nsentences + nsent
        lr_scale += getattr(batch, "scale", 1.0) / len(batches)
    loss_sum, ntokens, nsentences, *votes = distributed.all_reduce_sum(
        [torch.stack(losses).double().sum().item(), ntokens, nsentences, *votes]
    )
    if not math.isfinite(loss_sum):
        raise RnnkitError(
            f"loss is {loss_sum} at update {run.progress.updates + 1} (epoch "
            f"{run.progress.epoch}); stopped, last good checkpoint kept in {run.save_dir}"
        )
    precision.unscale(run.optimizer)
    # DDP averaged the gradients of summed losses over workers: × W / global count = their mean.
    denom = ntokens if run.cfg.loss_average == "tokens" else nsentences
    factor = distributed.world_size() / max(denom, 1)
    for p in run.model.parameters():
        if p.grad is not None:
            p.grad.mul_(factor)
    if run.cfg.clip_norm > 0:  # the gradients are the same on every worker: this is the global norm
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.clip_norm)
    set_lr(run.optimizer, run.schedule.lr * lr_scale)
    precision.step(run.optimizer)
    run.progress.updates += 1
    run.schedule.step_update(run.progress.updates)
    return loss_sum, ntokens, votes


def train_step(run: Run, batch: Any, itr: Any) -> tuple[float, int]:
    """One update from one batch; returns the summed loss and the number of target tokens."""
    loss, ntokens, _ = train_update(run, [batch], itr)
    return loss, int(ntokens)


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
