"""Search rules: how one step's log-probs of every live hypothesis become candidate extensions.

A rule knows nothing about histories, finished hypotheses or the decoder; the bookkeeping of
:func:`rnnkit.generation.search.generate` calls it once per step (fairseq's split of the search
*rule* from the beam *bookkeeping*). :class:`BeamRule` keeps the best 2K extensions of each
sentence; :class:`SamplingRule` draws one token per slot from a filtered, tempered distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from rnnkit.generation.sampling import filter_logits

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Candidates:
    """A rule's proposals for ``N`` sentences: extend slot ``beams`` by ``tokens``, best first."""

    scores: Tensor  # (N, C) cumulative log P after the extension; -inf = no candidate
    tokens: Tensor  # (N, C) long
    beams: Tensor  # (N, C) long, the slot in 0..K-1 each candidate extends


class SearchRule(Protocol):
    """Chooses candidate extensions; knows nothing about histories or finished hypotheses."""

    def start_scores(self, beam: int, device: torch.device) -> Tensor:
        """Cumulative scores (K,) of a sentence's slots before the first step (-inf: unused)."""
        ...

    def select(self, lprobs: Tensor, scores: Tensor) -> Candidates:
        """Candidates from ``lprobs`` (N, K, V) and the slots' cumulative ``scores`` (N, K).

        At least K candidates per sentence, sorted by score; the bookkeeping keeps the first K
        that do not end in eos.
        """
        ...


class BeamRule:
    """Beam search: the best 2K extensions of a sentence over all its K slots × V tokens."""

    def start_scores(self, beam: int, device: torch.device) -> Tensor:
        # A sentence's slots start identical; only slot 0 is live, or beams would be duplicates.
        return torch.tensor([0.0] + [NEG_INF] * (beam - 1), device=device)

    def select(self, lprobs: Tensor, scores: Tensor) -> Candidates:
        n, k, v = lprobs.shape
        flat = (scores.unsqueeze(-1) + lprobs).view(n, k * v)  # (N, K*V)
        # 2K: even if K candidates end in eos there are K left to continue with.
        top, index = flat.topk(min(2 * k, k * v), dim=1)  # (N, C), sorted
        return Candidates(top, index % v, index.div(v, rounding_mode="floor"))


@dataclass(frozen=True)
class SamplingRule:
    """Sampling: every slot draws one token from its filtered, tempered distribution.

    All K slots start live, so a sentence gets K independent samples; a slot ends at its eos.
    """

    temperature: float
    top_k: int
    top_p: float
    generator: torch.Generator

    def start_scores(self, beam: int, device: torch.device) -> Tensor:
        return torch.zeros(beam, device=device)

    def select(self, lprobs: Tensor, scores: Tensor) -> Candidates:
        n, k, v = lprobs.shape
        logits = filter_logits(lprobs.reshape(n * k, v) / self.temperature, self.top_k, self.top_p)
        empty = torch.isneginf(logits).all(dim=1, keepdim=True)  # (N*K, 1) every token banned
        probs = logits.masked_fill(empty, 0.0).softmax(dim=1)  # draw anything; scored -inf below
        tokens = torch.multinomial(probs, 1, generator=self.generator).view(n, k)
        cand = scores + lprobs.gather(2, tokens.unsqueeze(-1)).squeeze(-1)  # (N, K)
        cand = cand.masked_fill(empty.view(n, k), NEG_INF)
        cand, order = cand.sort(dim=1, descending=True)
        beams = torch.arange(k, device=lprobs.device).expand(n, k)
        return Candidates(cand, tokens.gather(1, order), beams.gather(1, order))
