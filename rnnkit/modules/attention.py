"""Encoder-decoder attention: score functions, global/local alignment and the attentional vector.

This module owns how a decoder step looks at the encoder outputs. :data:`ATTENTION` names the score
functions — Luong et al. (2015)'s ``dot``, ``general`` and ``concat`` and Bahdanau et al. (2015)'s
additive ``bahdanau`` — each a small module that projects the keys once per sentence
(:meth:`Score.prepare`) so a decoding step costs O(S·H), not O(S·H²). :class:`Attention` adds
Luong's alignment modes (``global``, ``local-m``, ``local-p``) and padding masks; it returns a
context vector and the alignment weights. :class:`AttentionalHidden` is Luong's attentional vector
h̃_t = tanh(W_c[c_t; h_t]), which the decoder uses for its output layer and, with input feeding,
feeds into the next step. A score declares which decoder state it queries (:data:`QUERIES`):
``current``, the top-layer h_t after this step's recurrence (Luong), or ``previous``, the state
s_{t-1} before it (Bahdanau); :func:`score_query` reads that declaration, and the decoder built
for a score follows it (:mod:`rnnkit.modules.decoders`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.registry import Registry

MODES = ("global", "local-m", "local-p")


QUERIES = {
    "current": "the decoder's top-layer state h_t after this step's recurrence (Luong)",
    "previous": "the decoder's top-layer state s_{t-1} before this step's recurrence (Bahdanau)",
}


class Score(nn.Module):
    """A score function: ``prepare`` projects the keys once, ``forward`` scores one query.

    ``query`` (a key of :data:`QUERIES`) says which decoder state the score is meant for; a
    registered score inherits ``current`` unless it sets its own.
    """

    query: ClassVar[str] = "current"

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()

    def prepare(self, keys: Tensor) -> Tensor:
        """``keys`` (B, S, K) → the per-sentence projection that ``forward`` scores against."""
        return keys

    def forward(self, query: Tensor, projected: Tensor) -> Tensor:
        """``query`` (B, G, Q): G queries per sentence (a decoding step's beams; 1 in training),
        ``projected`` (B, S, ·) from :meth:`prepare` → scores (B, G, S)."""
        raise NotImplementedError


ATTENTION: Registry[type[Score]] = Registry("attention")


def score_query(name: str) -> str:
    """Which decoder state the registered score ``name`` queries: a key of :data:`QUERIES`."""
    query = getattr(ATTENTION.get(name), "query", None)  # a plugin may not derive from Score
    if query not in QUERIES:
        raise RnnkitError(
            f"attention score {name!r} declares query {query!r}; "
            f"a score's class attribute `query` must be one of {', '.join(QUERIES)}"
        )
    return query


def scores_querying(query: str) -> list[str]:
    """The registered scores that declare ``query``, sorted."""
    return [e.name for e in ATTENTION if getattr(e.obj, "query", None) == query]


@ATTENTION.register("dot")
class DotScore(Score):
    """Luong's dot score h_tᵀ h̄_s (query and key sizes must match)."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__(query_size, key_size, hidden_size)
        if query_size != key_size:
            raise RnnkitError(
                f"dot attention needs equal query and key sizes, got {query_size} and {key_size}; "
                "use 'general', which learns a projection between them"
            )

    def forward(self, query: Tensor, projected: Tensor) -> Tensor:
        return torch.bmm(query, projected.transpose(1, 2))  # (B, G, S)


@ATTENTION.register("general")
class GeneralScore(Score):
    """Luong's general score h_tᵀ W_a h̄_s (W_a h̄_s is computed once per sentence)."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__(query_size, key_size, hidden_size)
        self.w_a = nn.Linear(key_size, query_size, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.w_a(keys)  # (B, S, Q)

    def forward(self, query: Tensor, projected: Tensor) -> Tensor:
        return torch.bmm(query, projected.transpose(1, 2))  # (B, G, S)


@ATTENTION.register("concat")
class ConcatScore(Score):
    """Luong's concat score v_aᵀ tanh(W_a[h_t; h̄_s]), computed as W_q h_t + W_k h̄_s."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__(query_size, key_size, hidden_size)
        # W_a[h; h̄] splits into a query half and a key half; only the key half needs the whole
        # source, and it is the same at every step, so prepare() applies it once.
        self.w_q = nn.Linear(query_size, hidden_size)
        self.w_k = nn.Linear(key_size, hidden_size, bias=False)
        self.v_a = nn.Linear(hidden_size, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.w_k(keys)  # (B, S, A)

    def forward(self, query: Tensor, projected: Tensor) -> Tensor:
        hidden = torch.tanh(projected.unsqueeze(1) + self.w_q(query).unsqueeze(2))  # (B, G, S, A)
        return self.v_a(hidden).squeeze(-1)  # (B, G, S)


@ATTENTION.register("bahdanau")
class BahdanauScore(ConcatScore):
    """Bahdanau's additive score v_aᵀ tanh(W_q s_{t-1} + W_k h̄_s) over the previous state.

    The arithmetic is Luong's ``concat``; what differs is the query — the Bahdanau decoder passes
    its previous state s_{t-1} and feeds the context into its recurrence — so it is the decoder,
    not this class, that makes the two models different.
    """

    query: ClassVar[str] = "previous"


@dataclass
class PreparedKeys:
    """Encoder outputs made ready for attention: computed once per sentence, reused every step.

    The tensors hold one row per *sentence*; the decoder's rows (a sentence's beams) map onto
    them. Beam search reorders rows every step, but the sentences only change when one finishes,
    so :meth:`reorder` follows the rows with a map and copies the (large) per-sentence tensors
    only when sentences leave. Row ``r`` belongs to sentence ``r // group``, or to ``rows[r]``
    when the rows are not in equal consecutive groups.
    """

    keys: Tensor  # (N, S, K) the encoder outputs h̄_s
    projected: Tensor  # (N, S, ·) the score's projection of the keys
    mask: Tensor  # (N, S) bool, True on real tokens
    lengths: Tensor  # (N,) float, real source length S_i
    group: int = 1  # rows per sentence when ``rows`` is None
    rows: Tensor | None = None  # (R,) long, each row's sentence, when not in groups

    def reorder(self, order: Tensor) -> PreparedKeys:
        """The keys of rows ``order`` (R',): select, repeat and reorder rows, as beam search does
        with hypotheses."""
        if self.rows is None:
            sent = order.div(self.group, rounding_mode="floor")
        else:
            sent = self.rows.index_select(0, order)
        used, rows = torch.unique(sent, sorted=True, return_inverse=True)  # rows: (R',) into used
        tensors = self._tensors()
        if used.numel() < self.keys.size(0):  # sentences left: drop their memory
            tensors = tuple(t.index_select(0, used) for t in tensors)
        n, r = used.numel(), sent.numel()
        group = r // n if n else 1
        if n * group == r and torch.equal(rows, _groups(n, group, rows.device)):
            return PreparedKeys(*tensors, group=group)
        return PreparedKeys(*tensors, rows=rows)

    def grouped(self) -> tuple[PreparedKeys, int]:
        """These keys with row ``r`` belonging to sentence ``r // G``, and ``G``; irregular rows
        are gathered into one sentence each."""
        if self.rows is None:
            return self, self.group
        return PreparedKeys(*(t.index_select(0, self.rows) for t in self._tensors())), 1

    def _tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.keys, self.projected, self.mask, self.lengths


def _groups(n: int, size: int, device: torch.device) -> Tensor:
    """(n * size,) long: 0 repeated ``size`` times, then 1, ..., then n - 1."""
    return torch.arange(n, device=device).repeat_interleave(size)


def masked_softmax(scores: Tensor, allowed: Tensor) -> Tensor:
    """Softmax of ``scores`` (..., S) over ``allowed`` positions (broadcast to ``scores``);
    exactly 0 elsewhere.

    The fill is the dtype's minimum rather than -inf so that a row with nothing allowed (a
    sentence that is all padding) gives zeros instead of NaN, in the value and in the gradient.
    """
    filled = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1).masked_fill(~allowed, 0.0)


class Attention(nn.Module):
    """A score function with Luong's alignment modes; one decoder step at a time.

    ``global`` attends to every real source token. ``local-m`` takes the aligned position
    p_t = t (the decoder step, clamped to S_i − 1) and softmaxes over the real tokens in
    [p_t − D, p_t + D]; as in Luong et al., there is no Gaussian in this mode, so its weights sum
    to 1. ``local-p`` predicts p_t = S_i · sigmoid(v_pᵀ tanh(W_p h_t)) ∈ [0, S_i] from the query,
    softmaxes over the real tokens with |s − p_t| ≤ D and multiplies by exp(−(s − p_t)² / 2σ²),
    σ = D/2. Like Luong we do not renormalize after the Gaussian, so local-p weights sum to at
    most 1; the Gaussian is what carries the gradient to W_p and v_p.

    ``output_size`` is the width of the additive scores' hidden layer (v_a's size; default
    ``key_size``); ``dot`` and ``general`` ignore it.
    """

    def __init__(
        self,
        score: str,
        query_size: int,
        key_size: int,
        mode: str = "global",
        window: int = 10,
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise RnnkitError(f"unknown attention mode {mode!r} (valid: {', '.join(MODES)})")
        if mode != "global" and window < 1:
            # With D ≥ 1 the window around any p_t ∈ [0, S_i] holds a real token.
            raise RnnkitError(f"local attention needs a window half-width ≥ 1, got {window}")
        self.mode, self.window = mode, window
        self.score_name = score
        self.score = ATTENTION.get(score)(query_size, key_size, output_size or key_size)
        if mode == "local-p":
            self.w_p = nn.Linear(query_size, query_size, bias=False)
            self.v_p = nn.Linear(query_size, 1, bias=False)

    def prepare(self, keys: Tensor, mask: Tensor) -> PreparedKeys:
        """``keys`` (B, S, K) and ``mask`` (B, S) bool (True = real token), once per sentence."""
        lengths = mask.sum(dim=1).float()  # (B,) float32 even for bf16 keys: positions > 256
        return PreparedKeys(keys, self.score.prepare(keys), mask, lengths)

    def aligned_position(
        self, query: Tensor, prepared: PreparedKeys, step: int | None = None
    ) -> Tensor:
        """The aligned source position p_t (B,) of a local mode (float for ``local-p``) for the
        queries (B, Q), one per row of ``prepared``."""
        keys, g = prepared.grouped()
        p_t = self._position(query.view(-1, g, query.size(-1)), keys.lengths.unsqueeze(1), step)
        return p_t.expand(-1, g).reshape(-1)

    def _position(self, query: Tensor, lengths: Tensor, step: int | None) -> Tensor:
        """p_t (N, G) for queries (N, G, Q) against sentences of ``lengths`` (N, 1); (N, 1) for
        ``local-m``, where it does not depend on the query."""
        if self.mode == "local-m":
            if step is None:
                raise RnnkitError("local-m attention needs the decoder step")
            last = (lengths - 1).clamp(min=0)
            return torch.full_like(lengths, float(step)).minimum(last)
        if self.mode == "local-p":
            gate = torch.sigmoid(self.v_p(torch.tanh(self.w_p(query)))).squeeze(-1)  # (N, G)
            return lengths * gate
        raise RnnkitError("global attention has no aligned position")

    def forward(
        self, query: Tensor, prepared: PreparedKeys, step: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """``query`` (B, Q) at decoder ``step`` → context (B, K) and weights (B, S), one row per
        row of ``prepared``.

        ``step`` (0-based) is required for ``local-m`` and ignored otherwise. The G rows of a
        sentence are scored together against its keys (N = B / G sentences).
        """
        keys, g = prepared.grouped()
        rows = query.size(0)
        q = query.view(-1, g, query.size(-1))  # (N, G, Q)
        scores = self.score(q, keys.projected)  # (N, G, S)
        mask = keys.mask.unsqueeze(1)  # (N, 1, S)
        if self.mode == "global":
            weights = masked_softmax(scores, mask)
        else:
            p_t = self._position(q, keys.lengths.unsqueeze(1), step).unsqueeze(-1)  # (N, G, 1)
            src = torch.arange(scores.size(-1), device=scores.device, dtype=torch.float32)
            offset = src - p_t  # (N, G, S)
            allowed = mask & (offset.abs() <= self.window)
            weights = masked_softmax(scores, allowed)
            if self.mode == "local-p":
                sigma = self.window / 2
                weights = weights * torch.exp(-offset.pow(2) / (2 * sigma**2))
        context = torch.bmm(weights.to(keys.keys.dtype), keys.keys)  # (N, G, K)
        return context.view(rows, context.size(-1)), weights.view(rows, weights.size(-1))

    def extra_repr(self) -> str:
        window = "" if self.mode == "global" else f", window={self.window}"
        return f"score={self.score_name!r}, mode={self.mode!r}{window}"


class AttentionalHidden(nn.Module):
    """Luong's attentional vector h̃_t = tanh(W_c[c_t; h_t]) (no bias, as in the paper)."""

    def __init__(self, hidden: int, context: int, out: int) -> None:
        super().__init__()
        self.w_c = nn.Linear(context + hidden, out, bias=False)

    def forward(self, hidden: Tensor, context: Tensor) -> Tensor:
        """``hidden`` (B, H), ``context`` (B, K) → h̃_t (B, out)."""
        return torch.tanh(self.w_c(torch.cat([context, hidden], dim=-1)))
