"""Training criteria (losses), registered by name.

A criterion maps logits (N, V) and targets (N,) to the *summed* loss over the targets that are
not padding; the training loop divides by tokens or sequences (``--loss-average``), so every
criterion is normalized the same way. ``label_smoothed_cross_entropy`` spreads ``eps`` of each
target's mass uniformly over the vocabulary (Szegedy et al. 2016).

Both run through :class:`SummedCrossEntropy`, the same math as ``F.cross_entropy(...,
reduction="sum")`` with one (N, V) buffer in backward where torch's log-softmax and NLL take three
(issue 16.2: the output layer's loss is a tenth of a translation update on two cores).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from rnnkit.registry import Registry


class Criterion(Protocol):
    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


CRITERION_REGISTRY: Registry = Registry("criterion")


class SummedCrossEntropy(torch.autograd.Function):
    """Σ_i over non-ignored rows of lse_i − (1−ε) z_{i,t_i} − (ε/V) Σ_v z_{i,v}: cross-entropy
    of logits ``z`` (N, V) against targets smoothed by ε; its gradient is
    softmax(z_i) − (1−ε) onehot(t_i) − ε/V (zero on ignored rows)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int,
                eps: float) -> torch.Tensor:  # fmt: skip
        keep = targets != ignore_index  # (N,)
        safe = targets.masked_fill(~keep, 0)
        lse = torch.logsumexp(logits, dim=1)  # (N,)
        rows = lse - (1 - eps) * logits.gather(1, safe.unsqueeze(1)).squeeze(1)
        if eps:
            rows = rows - eps / logits.size(1) * logits.sum(dim=1)
        ctx.save_for_backward(logits, lse, safe, keep)
        ctx.eps = eps
        return rows.masked_fill(~keep, 0.0).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, lse, safe, keep = ctx.saved_tensors
        eps = ctx.eps
        probs = torch.sub(logits, lse.unsqueeze(1)).exp_()  # softmax, (N, V)
        if eps:
            probs.sub_(eps / logits.size(1))
        probs.scatter_add_(1, safe.unsqueeze(1), keep.to(probs.dtype).unsqueeze(1) * (eps - 1))
        probs.mul_((grad * keep.to(probs.dtype)).unsqueeze(1))
        return probs, None, None, None


def summed_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, eps: float = 0.0
) -> torch.Tensor:
    """``F.cross_entropy(logits, targets, ignore_index=..., reduction="sum",
    label_smoothing=eps)``, through :class:`SummedCrossEntropy` for fp32 logits."""
    if logits.dtype != torch.float32 or logits.dim() != 2:  # autocast's bf16, other shapes
        return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum",
                               label_smoothing=eps)  # fmt: skip
    return SummedCrossEntropy.apply(logits, targets, ignore_index, eps)


@CRITERION_REGISTRY.register("cross_entropy")
def cross_entropy(ignore_index: int = -100, label_smoothing: float = 0.0) -> Criterion:
    """Negative log-likelihood of the targets (summed)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return summed_cross_entropy(logits, targets, ignore_index)

    return loss


@CRITERION_REGISTRY.register("label_smoothed_cross_entropy")
def label_smoothed_cross_entropy(
    ignore_index: int = -100, label_smoothing: float = 0.1
) -> Criterion:
    """Cross-entropy against targets smoothed by ``--label-smoothing`` (summed)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return summed_cross_entropy(logits, targets, ignore_index, label_smoothing)

    return loss
