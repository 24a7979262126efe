"""Ensembles of trained models: several checkpoints of one task decoding as one model.

:func:`rnnkit.load` with a list of checkpoints wraps their models in one of the modules here and
hands the wrapper to the task's usual inference code, which calls it like a single model:

- :class:`DecoderEnsemble` (translation) is an
  :class:`~rnnkit.generation.decoder.IncrementalDecoder`: ``encode`` keeps every model's own
  state in one :class:`EnsembleState`, whose ``reorder`` reorders all of them together, and
  ``step`` returns the log of the mean of the models' probabilities (``logsumexp(lprobs_i) -
  log n``), so beam search, sampling and forced scoring run unchanged.
- :class:`LanguageModelEnsemble` (lm): ``forward(tokens, state)`` returns the log of the mean
  of the models' next-token probabilities in place of logits. A normalized log-distribution is
  its own ``log_softmax``, so every consumer (cross-entropy, softmax, temperature, top-k/p)
  reads it as the mean distribution: perplexity is that of the mean per token, sampling draws
  from the mean.
- :class:`SentenceEnsemble` (tagging, classification): the log of the mean of the tag and label
  probabilities. For CRF taggers (all or none) the emissions and the CRF's transition, start and
  end scores are averaged before Viterbi: the path maximizing the product of the models'
  sequence probabilities (their normalizers are constant per sentence), which for a model with
  itself is that model's path.

Model-dependent attributes the inference code reads (``cfg``) come from the first model. Models
of different output widths (a copy model's extended vocabulary next to a plain one) are padded
with probability 0.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError


@dataclass(frozen=True)
class EnsembleState:
    """The states of the models of an ensemble, in model order; reordered all together."""

    states: tuple[Any, ...]

    def reorder(self, order: Tensor) -> EnsembleState:
        """Rows ``order`` (B',) of every model's state (beam search)."""
        return EnsembleState(tuple(s.reorder(order) for s in self.states))

    def detach(self) -> EnsembleState:
        """Every model's state cut from the autograd graph (windows of a stream)."""
        return EnsembleState(tuple(s.detach() for s in self.states))

    def to(self, device: torch.device | str) -> EnsembleState:
        """Every model's state on ``device``."""
        return EnsembleState(tuple(s.to(device) for s in self.states))


def mean_log_probs(scores: Sequence[Tensor], normalized: bool = False) -> Tensor:
    """log(mean_i softmax(scores_i)) over the last dim: (..., V_i) each → (..., max V_i).

    ``normalized``: the scores are log-probabilities already (no log-softmax). A narrower
    distribution is padded with probability 0 (``-inf``).
    """
    width = max(s.size(-1) for s in scores)
    logs = []
    for s in scores:
        lp = s.float() if normalized else torch.log_softmax(s.float(), dim=-1)
        if lp.size(-1) < width:
            lp = nn.functional.pad(lp, (0, width - lp.size(-1)), value=float("-inf"))
        logs.append(lp)
    return torch.logsumexp(torch.stack(logs), dim=0) - math.log(len(logs))


def _mean_or_none(values: Sequence[Tensor | None]) -> Tensor | None:
    """The mean of the tensors, or None if any is None."""
    if any(v is None for v in values):
        return None
    return torch.stack([v for v in values if v is not None]).mean(dim=0)


class Ensemble(nn.Module):
    """Base of the wrappers: the models (``models``), the first model's ``cfg``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(models) < 2:
            raise ValueError("an ensemble needs at least two models")
        self.models = nn.ModuleList(models)
        self.cfg = getattr(models[0], "cfg", None)

    def __len__(self) -> int:
        return len(self.models)

    def _states(self, state: EnsembleState | None) -> Sequence[Any]:
        return [None] * len(self.models) if state is None else state.states


class DecoderEnsemble(Ensemble):
    """Sequence-to-sequence models decoding together (the IncrementalDecoder contract)."""

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> EnsembleState:
        """Every model's initial state for ``src_tokens`` (B, S) and ``src_lengths`` (B,)."""
        return EnsembleState(tuple(m.encode(src_tokens, src_lengths) for m in self.models))

    def step(
        self, prev_tokens: Tensor, state: EnsembleState
    ) -> tuple[Tensor, EnsembleState, Tensor | None]:
        """One step of every model: (B,) → log mean probabilities (B, V), the new states and
        the mean attention (B, S) (None if a model has none)."""
        outs = [m.step(prev_tokens, s) for m, s in zip(self.models, state.states, strict=True)]
        lprobs = mean_log_probs([lp for lp, _, _ in outs], normalized=True)
        attn = _mean_or_none([a for _, _, a in outs])
        return lprobs, EnsembleState(tuple(s for _, s, _ in outs)), attn

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced pass: log mean probabilities (B, T, V) — (N, V) at the positions of
        ``keep`` (B, T) bool, as a model's forward — and mean attention (B, T, S)."""
        outs = [m(src_tokens, src_lengths, prev_output_tokens) for m in self.models]
        lprobs = mean_log_probs([s for s, _ in outs])
        return lprobs if keep is None else lprobs[keep], _mean_or_none([a for _, a in outs])


class LanguageModelEnsemble(Ensemble):
    """Language models predicting together: the mean of their next-token probabilities."""

    def init_state(self, batch_size: int) -> EnsembleState:
        """Every model's initial state for ``batch_size`` streams."""
        return EnsembleState(tuple(m.init_state(batch_size) for m in self.models))

    def forward(
        self, tokens: Tensor, state: EnsembleState | None = None
    ) -> tuple[Tensor, EnsembleState]:
        """``tokens`` (B, T) → log mean probabilities (B, T, V) (in place of logits) and the
        models' states."""
        outs = [m(tokens, s) for m, s in zip(self.models, self._states(state), strict=True)]
        return mean_log_probs([lp for lp, _ in outs]), EnsembleState(tuple(s for _, s in outs))


class SentenceEnsemble(Ensemble):
    """Taggers or classifiers labelling together (see the module docstring for CRFs)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__(models)
        crfs = [getattr(m, "crf", None) for m in models]
        if any(c is not None for c in crfs) and any(c is None for c in crfs):
            raise RnnkitError("an ensemble of taggers needs a CRF in every model or in none")
        self.crf = None if crfs[0] is None else _mean_crf(crfs)
        self.char_features = next(
            (c for m in models if (c := getattr(m, "char_features", None)) is not None), None
        )

    def forward(
        self, tokens: Tensor, lengths: Tensor, chars: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None] | Tensor:
        """Tagger: (mean tag scores (B, T, K), mean label scores (B, C) or None); classifier:
        mean label scores (B, C). Scores are log mean probabilities; a CRF's are its emissions
        averaged. ``chars`` (the raw tokens' characters) go to the models that spell words
        with the same characters as the one that encoded them."""
        outs = [m(tokens, lengths, *self._chars_for(m, chars)) for m in self.models]
        if not isinstance(outs[0], tuple):
            return mean_log_probs(outs)
        tags = [t for t, _ in outs]
        tag_scores = torch.stack(tags).mean(0) if self.crf is not None else mean_log_probs(tags)
        labels = [lab for _, lab in outs if lab is not None]
        if outs[0][1] is None:
            return tag_scores, None
        return tag_scores, mean_log_probs(labels)

    def _chars_for(self, model: nn.Module, chars: Tensor | None) -> tuple[Tensor, ...]:
        """``(chars,)`` for a model reading the same character vocabulary, else ``()`` (it
        spells its dictionary's words, as without raw characters)."""
        mine, theirs = getattr(model, "char_features", None), self.char_features
        if chars is None or mine is None or theirs is None:
            return ()
        same = mine.vocab.chars == theirs.vocab.chars and mine.vocab.max_len == theirs.vocab.max_len
        return (chars,) if same else ()


def _mean_crf(crfs: Sequence[Any]) -> nn.Module:
    """A CRF like the first whose transition, start and end scores are the models' mean."""
    mean = copy.deepcopy(crfs[0])
    with torch.no_grad():
        for name in ("transitions", "start", "end"):
            getattr(mean, name).copy_(torch.stack([getattr(c, name) for c in crfs]).mean(0))
    return mean
