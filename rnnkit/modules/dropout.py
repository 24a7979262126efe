"""Dropout variants for recurrent models: locked (variational), word-type and DropConnect.

Standard dropout samples a fresh mask for every element; recurrent models also use masks that are
shared along an axis. :class:`LockedDropout` keeps one mask per sequence for every time step (Gal &
Ghahramani 2016; Merity et al. 2017), :func:`embedding_dropout` drops whole word types from the
embedding matrix, and :func:`drop_weight` is DropConnect on a weight matrix (one mask per call, so
one per sequence when applied once per forward). All are identity outside training or at p = 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_p(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, repeated at every time step (batch-first input)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        _check_p(p)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (B, T, D) → (B, T, D); the mask is (B, 1, D), broadcast over time."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(keep) / keep  # (B, 1, D)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_dropout(p: float, locked: bool) -> nn.Module:
    """A dropout module for one site: locked, standard, or identity when ``p`` is 0."""
    _check_p(p)
    if p == 0.0:
        return nn.Identity()
    return LockedDropout(p) if locked else nn.Dropout(p)


def embedding_dropout(embed: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Look up ``tokens`` (B, T) in ``embed`` with whole word types dropped → (B, T, E).

    Each row of the embedding matrix is kept with probability ``1 - p`` and rescaled by
    ``1 / (1 - p)``, so every occurrence of a dropped word in the batch is zero (Gal & Ghahramani
    2016). Masking the looked-up rows by ``mask[tokens]`` equals masking the matrix, but costs
    O(B·T·E) instead of O(V·E).
    """
    _check_p(p)
    emb = embed(tokens)  # (B, T, E)
    if not training or p == 0.0:
        return emb
    keep = 1.0 - p
    row_mask = torch.empty(embed.num_embeddings, device=emb.device, dtype=emb.dtype)
    row_mask.bernoulli_(keep).div_(keep)  # (V,)
    return emb * row_mask[tokens].unsqueeze(-1)


def drop_weight(weight: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect: ``weight`` with elements zeroed with probability ``p`` and rescaled.

    Called once per forward on a recurrent matrix W_hh, the same dropped matrix is used at every
    time step, which regularizes the recurrence without breaking the fused kernels (Wan et al.
    2013; Merity et al. 2017's weight drop).
    """
    _check_p(p)
    return F.dropout(weight, p, training=True) if training and p > 0.0 else weight
