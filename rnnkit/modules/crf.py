r"""Linear-chain conditional random field: tag-sequence NLL by the forward algorithm, Viterbi.

An HMM scores a tag sequence by transition and emission *probabilities*; a linear-chain CRF
(Lafferty et al. 2001; over BiLSTM features, Huang et al. 2015 and Lample et al. 2016) keeps the
chain but uses unnormalised *scores* and normalises once over whole sequences. For a sentence of
length n with emission scores E_t(j) (the encoder's output for tag j at step t, shape (T, K)),
learned transitions T_ij (tag i → tag j), start scores s_j and end scores e_j, the score of tags
y = y_1 … y_n is

    score(y) = s_{y_1} + Σ_{t=1..n} E_t(y_t) + Σ_{t=2..n} T_{y_{t-1} y_t} + e_{y_n}

and p(y | x) = exp(score(y)) / Z with Z = Σ_{y'} exp(score(y')) over all K^n sequences. The
forward algorithm computes log Z in O(n K²), in log space so that nothing overflows:

    α_1(j) = s_j + E_1(j)
    α_t(j) = logsumexp_i(α_{t-1}(i) + T_ij) + E_t(j)          t = 2 … n
    log Z  = logsumexp_j(α_n(j) + e_j)

and the loss of a gold sequence is NLL = log Z − score(y). (The logsumexp over i runs as a
matrix product of shifted exponentials, :func:`_log_partition`.) Viterbi is the same recursion with
max for logsumexp, plus backpointers:

    δ_1(j) = s_j + E_1(j);   δ_t(j) = max_i(δ_{t-1}(i) + T_ij) + E_t(j),   ψ_t(j) = argmax_i(…)
    ŷ_n = argmax_j(δ_n(j) + e_j);   ŷ_{t-1} = ψ_t(ŷ_t)

Constraints are added scores of :data:`FORBIDDEN` (a large negative number, not −∞, so that a
sentence whose gold tags break them still has a finite loss and gradient): BIO rules (an ``I-x``
only after ``B-x`` or ``I-x``, never first) and tags that must never be predicted (special
symbols, padding; the ``allowed`` vector). Decoding applies both; training applies the BIO
rules only with ``constrain_training`` and never the ``allowed`` vector, so an unseen gold tag
(``<unk>`` in validation) costs an ordinary loss, not a penalty. Every operation is batched over
padded sentences with a ``lengths`` vector: a sentence's loss and path do not depend on the
padding around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.dictionary import Dictionary

FORBIDDEN = -1.0e4  # score added to a forbidden start or transition (exp(-1e4) is 0 in fp32)


class ViterbiPath(NamedTuple):
    """Best tag sequences: ``tags`` (B, T), ``pad`` past each length, and their ``score`` (B,)."""

    tags: Tensor
    score: Tensor


def bio_constraints(tags: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Which tags may start a sentence (K,) bool and which transitions i → j are allowed
    (K, K) bool under BIO: ``I-x`` only after ``B-x`` or ``I-x``, and never first. Tags that are
    not ``I-x`` (``O``, ``B-x``, anything else) are unconstrained."""
    k = len(tags)
    start_ok = torch.ones(k, dtype=torch.bool)
    trans_ok = torch.ones(k, k, dtype=torch.bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start_ok[j] = False
            kind = tag[2:]
            trans_ok[:, j] = torch.tensor([t in (f"B-{kind}", f"I-{kind}") for t in tags])
    return start_ok, trans_ok


def _length_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B,) lengths → (B, T) bool, true inside each sentence."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def _working_precision(emissions: Tensor) -> Tensor:
    """fp16/bf16 emissions → fp32 (sums over a sentence need it); fp32/fp64 unchanged."""
    return emissions.float() if emissions.dtype in (torch.float16, torch.bfloat16) else emissions


def _no_autocast(x: Tensor) -> torch.autocast:
    """A context without autocast on ``x``'s device (a bf16 matrix product would blur log Z)."""
    return torch.autocast(x.device.type, enabled=False)


class CRF(nn.Module):
    """Linear-chain CRF over K tags: learned ``transitions`` (K, K), ``start`` and ``end`` (K,).

    The scores start at zero, where the CRF's loss equals per-token softmax cross-entropy.
    Only these three parameters are in the state dict; the constraint masks are buffers
    rebuilt from the tag dictionary (:meth:`from_dictionary`).
    """

    def __init__(
        self,
        num_tags: int,
        *,
        allowed: Tensor | None = None,
        start_ok: Tensor | None = None,
        trans_ok: Tensor | None = None,
        constrain_training: bool = False,
        pad_index: int = 0,
    ) -> None:
        super().__init__()
        self.num_tags, self.pad_index = num_tags, pad_index
        self.constrain_training = constrain_training
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (K, K): i → j
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        ok_tag = torch.ones(num_tags, dtype=torch.bool) if allowed is None else allowed.bool()
        ok_start = torch.ones(num_tags, dtype=torch.bool) if start_ok is None else start_ok
        ok_trans = (
            torch.ones(num_tags, num_tags, dtype=torch.bool) if trans_ok is None else trans_ok
        )
        penalty = lambda ok: torch.zeros(ok.shape).masked_fill(~ok.bool(), FORBIDDEN)  # noqa: E731
        self.register_buffer("tag_penalty", penalty(ok_tag), persistent=False)  # (K,)
        self.register_buffer("start_penalty", penalty(ok_start), persistent=False)  # (K,)
        self.register_buffer("trans_penalty", penalty(ok_trans), persistent=False)  # (K, K)

    @classmethod
    def from_dictionary(
        cls, tags: Dictionary, *, bio: bool = True, constrain_training: bool = False
    ) -> CRF:
        """A CRF over a tag dictionary: never predicts a special symbol or ``madeupword``
        padding, and with ``bio`` follows the BIO rules in decoding (and with
        ``constrain_training`` in training too)."""
        allowed = torch.tensor(
            [
                i >= tags.nspecial and not s.startswith("madeupword")
                for i, s in enumerate(tags.symbols)
            ]
        )
        start_ok, trans_ok = bio_constraints(tags.symbols) if bio else (None, None)
        return cls(len(tags), allowed=allowed, start_ok=start_ok, trans_ok=trans_ok,
                   constrain_training=constrain_training, pad_index=tags.pad_index)  # fmt: skip

    def scores(self, dtype: torch.dtype, *, bio: bool, tags: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Start (K,), transition (K, K) and end (K,) scores in ``dtype``, plus the penalties
        of the ``bio`` rules and of the tags that are not ``allowed`` (``tags``), if asked."""
        start, trans, end = self.start.to(dtype), self.transitions.to(dtype), self.end.to(dtype)
        if bio:
            start = start + self.start_penalty.to(dtype)
            trans = trans + self.trans_penalty.to(dtype)
        if tags:  # a forbidden tag can be neither first nor entered
            start = start + self.tag_penalty.to(dtype)
            trans = trans + self.tag_penalty.to(dtype)
        return start, trans, end

    def forward(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """Negative log-likelihood of the gold ``tags`` (B, T) given ``emissions`` (B, T, K) and
        ``lengths`` (B,) → (B,), one per sentence (0 for an empty one). Tags past a sentence's
        length are ignored (any value)."""
        return self.nll(emissions, tags, lengths)

    def nll(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """See :meth:`forward`: log Z − score(gold), per sentence (B,). Z sums over every tag
        sequence (with ``constrain_training``: every BIO-valid one), so a gold tag that decoding
        may not output (``<unk>`` for a tag unseen in training) still has a finite loss."""
        with _no_autocast(emissions):
            e = _working_precision(emissions)
            start, trans, end = self.scores(e.dtype, bio=self.constrain_training, tags=False)
            log_z = _log_partition(e, lengths, start, trans, end)
            nll = log_z - _gold_score(e, tags, lengths, start, trans, end)
        return nll.masked_fill(lengths == 0, 0.0)

    def log_partition(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """log Z per sentence (B,) for ``emissions`` (B, T, K), under the training constraints
        (:meth:`nll`'s)."""
        with _no_autocast(emissions):
            e = _working_precision(emissions)
            start, trans, end = self.scores(e.dtype, bio=self.constrain_training, tags=False)
            log_z = _log_partition(e, lengths, start, trans, end)
        return log_z.masked_fill(lengths == 0, 0.0)

    @torch.no_grad()
    def decode(self, emissions: Tensor, lengths: Tensor) -> ViterbiPath:
        """The best tag sequence per sentence under every constraint (batched Viterbi):
        ``emissions`` (B, T, K), ``lengths`` (B,) → :class:`ViterbiPath`, tags (B, T)."""
        with _no_autocast(emissions):
            e = _working_precision(emissions)
            start, trans, end = self.scores(e.dtype, bio=True, tags=True)
            return _viterbi(e, lengths, start, trans, end, self.pad_index)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, constrain_training={self.constrain_training}"


def _gold_score(
    e: Tensor, tags: Tensor, lengths: Tensor, start: Tensor, trans: Tensor, end: Tensor
) -> Tensor:
    """score(y) of the gold ``tags`` (B, T) → (B,) (see the module docstring)."""
    mask = _length_mask(lengths, e.size(1))  # (B, T)
    y = tags.masked_fill(~mask, 0)  # any index past the end, so gathers stay in range
    emit = e.gather(2, y.unsqueeze(2)).squeeze(2)  # (B, T): E_t(y_t)
    step = trans[y[:, :-1], y[:, 1:]]  # (B, T-1): T_{y_{t-1} y_t}
    last = y.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (B,)
    total = (emit * mask).sum(1) + (step * mask[:, 1:]).sum(1)
    return total + start[y[:, 0]] + end[last]


def _log_partition(e: Tensor, lengths: Tensor, start: Tensor, trans: Tensor, end: Tensor) -> Tensor:
    """log Z (B,) by the forward recursion; α stops changing past each sentence's length.

    The logsumexp over i is a matrix product of shifted exponentials (α by its row maximum m,
    T by each column's maximum c_j, both constants of the recursion, hence detached):
    α_t(j) = m + c_j + log Σ_i exp(α_{t-1}(i) − m)·exp(T_ij − c_j) + E_t(j); a hundred times
    faster on CPU than a logsumexp over (B, K, K). The sum is clamped at the smallest normal
    number, which matters only when every allowed predecessor of j scores more than about 87
    nats (fp32; 708 in fp64) below the best tag at that step: α_t(j) is then overestimated,
    which can only raise the NLL.
    """
    mask = _length_mask(lengths, e.size(1))  # (B, T)
    col = trans.detach().max(0).values  # (K,): c_j
    weights = (trans - col).exp()  # (K, K), in [0, 1]
    tiny = torch.finfo(e.dtype).tiny
    alpha = start + e[:, 0]  # (B, K)
    for t in range(1, e.size(1)):
        m = alpha.detach().max(1, keepdim=True).values  # (B, 1)
        total = (alpha - m).exp() @ weights  # (B, K)
        nxt = total.clamp_min(tiny).log() + m + col + e[:, t]
        alpha = torch.where(mask[:, t, None], nxt, alpha)
    return torch.logsumexp(alpha + end, dim=1)


def _viterbi(
    e: Tensor, lengths: Tensor, start: Tensor, trans: Tensor, end: Tensor, pad: int
) -> ViterbiPath:
    """Max-product recursion with backpointers, then backtracking from each sentence's end."""
    batch, steps, _ = e.shape
    mask = _length_mask(lengths, steps)  # (B, T)
    delta = start + e[:, 0]  # (B, K)
    backpointers = []  # T-1 tensors (B, K): ψ_t(j), the best previous tag
    trans_t = trans.t().contiguous()  # (K, K): [j, i], so the max runs over the last axis
    for t in range(1, steps):
        best, arg = (delta.unsqueeze(1) + trans_t).max(dim=2)  # (B, K) each
        delta = torch.where(mask[:, t, None], best + e[:, t], delta)
        backpointers.append(arg)
    score, cur = (delta + end).max(dim=1)  # (B,): the best last tag
    path = torch.full((batch, steps), pad, dtype=torch.long, device=e.device)
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:  # step back from t+1 where t+1 is inside the sentence
            prev = backpointers[t].gather(1, cur.unsqueeze(1)).squeeze(1)
            cur = torch.where(t + 1 < lengths, prev, cur)
        path[:, t] = torch.where(t < lengths, cur, path[:, t])
    return ViterbiPath(path, score.masked_fill(lengths == 0, 0.0))
