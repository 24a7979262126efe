"""Word dropout: replace training tokens by ``<unk>``, so the model learns what to do with words
it has never seen.

At test time every word missing from the training vocabulary is ``<unk>``; a model that never saw
``<unk>`` in training has an untrained embedding for it. Kiperwasser & Goldberg (2016) replace a
training occurrence of word w by ``<unk>`` with probability α / (α + count(w)), so rare words
(most like the unseen ones) are dropped often and frequent ones almost never;
:func:`frequency_unk_probs` builds that table from a :class:`~rnnkit.dictionary.Dictionary`'s
counts, :func:`fixed_unk_probs` a fixed rate. Special symbols (``<s> <pad> </s> <unk>``) and
``madeupword`` padding are never replaced. With character features, drop only the word-embedding
input and look characters up from the original ids, so a dropped word is read by its spelling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError


def _droppable(d: Dictionary) -> Tensor:
    """(V,) bool: ordinary words (not a special symbol or ``madeupword`` padding)."""
    return torch.tensor(
        [i >= d.nspecial and not s.startswith("madeupword") for i, s in enumerate(d.symbols)]
    )


def frequency_unk_probs(d: Dictionary, alpha: float) -> Tensor:
    """(V,) float: α / (α + count(w)) per word of ``d``, 0 for specials and padding."""
    if alpha < 0:
        raise RnnkitError(f"word dropout alpha must be >= 0, got {alpha}")
    counts = torch.tensor(d.count, dtype=torch.float64)
    probs = alpha / (alpha + counts) if alpha > 0 else torch.zeros_like(counts)
    return probs.masked_fill(~_droppable(d), 0.0).float()


def fixed_unk_probs(d: Dictionary, rate: float) -> Tensor:
    """(V,) float: ``rate`` for every ordinary word of ``d``, 0 for specials and padding."""
    if not 0.0 <= rate < 1.0:
        raise RnnkitError(f"word dropout rate must be in [0, 1), got {rate}")
    return _droppable(d).float() * rate


def word_dropout(
    tokens: Tensor, probs: Tensor, unk: int, generator: torch.Generator | None = None
) -> Tensor:
    """``tokens`` (B, T) with each token w replaced by ``unk`` with probability ``probs[w]``
    (``probs`` (V,), e.g. :func:`frequency_unk_probs`) → a new (B, T) tensor."""
    p = probs.to(tokens.device)[tokens]  # (B, T)
    draw = torch.rand(tokens.shape, device=tokens.device, generator=generator)
    return tokens.masked_fill(draw < p, unk)


class WordDropout(nn.Module):
    """:func:`word_dropout` in training, the identity in evaluation. The probability table is a
    non-persistent buffer (rebuilt from the dictionary; not in the state dict)."""

    def __init__(self, probs: Tensor, unk: int) -> None:
        super().__init__()
        self.unk = unk
        self.active = bool(probs.any())  # checked once here, not by a device sync per batch
        self.register_buffer("probs", probs.float(), persistent=False)

    @classmethod
    def from_dictionary(cls, d: Dictionary, alpha: float = 0.0, rate: float = 0.0) -> WordDropout:
        """Frequency-based with ``alpha`` > 0, else a fixed ``rate`` (0: never drops)."""
        probs = frequency_unk_probs(d, alpha) if alpha > 0 else fixed_unk_probs(d, rate)
        return cls(probs, d.unk_index)

    def forward(self, tokens: Tensor) -> Tensor:
        """``tokens`` (B, T) → (B, T), some replaced by ``<unk>`` when training."""
        if not self.training or not self.active:
            return tokens
        return word_dropout(tokens, self.probs, self.unk)

    def extra_repr(self) -> str:
        return f"unk={self.unk}, active={self.active}"
