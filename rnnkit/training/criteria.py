"""Training criteria (losses), registered by name.

A criterion maps logits (N, V) and targets (N,) to the *summed* loss over the targets that are
not padding; the training loop divides by tokens or sequences (``--loss-average``), so every
criterion is normalized the same way. ``label_smoothed_cross_entropy`` spreads ``eps`` of each
target's mass uniformly over the vocabulary (Szegedy et al. 2016).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from rnnkit.registry import Registry


class Criterion(Protocol):
    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


CRITERION_REGISTRY: Registry = Registry("criterion")


@CRITERION_REGISTRY.register("cross_entropy")
def cross_entropy(ignore_index: int = -100, label_smoothing: float = 0.0) -> Criterion:
    """Negative log-likelihood of the targets (summed)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum")

    return loss


@CRITERION_REGISTRY.register("label_smoothed_cross_entropy")
def label_smoothed_cross_entropy(
    ignore_index: int = -100, label_smoothing: float = 0.1
) -> Criterion:
    """Cross-entropy against targets smoothed by ``--label-smoothing`` (summed)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits,
            targets,
            ignore_index=ignore_index,
            reduction="sum",
            label_smoothing=label_smoothing,
        )

    return loss
