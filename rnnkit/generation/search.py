"""Beam search and sampling through an :class:`~rnnkit.generation.decoder.IncrementalDecoder`.

As in fairseq, the search *rule* is split from the beam *bookkeeping*. A rule
(:class:`BeamRule`, :class:`SamplingRule`, in :mod:`rnnkit.generation.rules`) turns one step's
log-probs of every active hypothesis into candidate extensions; :func:`generate` keeps the books:
cumulative scores, token / score / attention histories, finished hypotheses, and which rows the
decoder state keeps (one ``state.reorder(order)`` per step follows the beams and drops finished
sentences). Every step is one ``decoder.step`` call on all active sentences × beams; Python loops
only over the hypotheses that end at that step. Greedy decoding is ``beam=1``.

Conventions (fairseq's unless said otherwise):

- A hypothesis of ``T`` tokens plus ``eos`` has length ``T + 1``; its score is
  ``sum(positional_scores) / (T + 1) ** lenpen`` — log P normalized by length, eos counted.
- ``min_len`` counts tokens without eos: eos is banned while fewer than ``min_len`` tokens exist.
  A sentence's maximum is ``int(max_len_a * src_len + max_len_b)`` tokens without eos, per
  sentence (fairseq uses the batch's longest source, so batching would change results); at the
  maximum eos is forced, which wins over ``min_len``.
- ``unkpen`` is subtracted from unk's log-prob, ``pad`` is never generated, and the positional
  scores are these adjusted log-probs (sampling scores with them too, not temperature-scaled).
- Stopping: with ``early_stop`` (the default, fairseq's current rule) a sentence is done once it
  has ``beam`` finished hypotheses, which makes ``beam=1`` exactly greedy. Without it, a sentence
  is done only when no active hypothesis can still beat the ``beam``-th best finished one (the
  bound assumes step scores ≤ 0, i.e. ``unkpen`` ≥ 0: log P only falls, and the best reachable
  length penalty is at the shortest or longest allowed length). Either way a sentence is done when
  it has no live hypothesis left, and hypotheses at the maximum length are finished by the forced
  eos.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnkit.errors import RnnkitError
from rnnkit.generation.decoder import IncrementalDecoder
from rnnkit.generation.rules import NEG_INF, BeamRule, Candidates, SamplingRule, SearchRule
from rnnkit.generation.sampling import make_generator

__all__ = [
    "BeamRule", "Candidates", "Hypothesis", "SamplingRule", "SearchConfig", "SearchRule",
    "generate", "make_rule", "replace_unk",
]  # fmt: skip


@dataclass(frozen=True)
class SearchConfig:
    """Decoding options; the CLI flags are these names with dashes (``--max-len-a``)."""

    # ``help`` is the option's help text (``rnnkit generate`` builds its options from these
    # fields); ``cli: False`` keeps a field off the command line.
    beam: int = field(default=5, metadata={"help": "Beam width; 1 is greedy."})
    nbest: int = field(default=1, metadata={"help": "Hypotheses to print per sentence."})
    max_len_a: float = field(
        default=0.0, metadata={"help": "Max output length a·src_len + b (tokens)."}
    )
    max_len_b: int = field(default=200, metadata={"help": "See --max-len-a."})
    min_len: int = field(default=1, metadata={"help": "Min output length (tokens, </s> excluded)."})
    lenpen: float = field(
        default=1.0, metadata={"help": "Length penalty α: score = log P / len^α."}
    )
    unkpen: float = field(default=0.0, metadata={"help": "Subtracted from <unk>'s log-prob."})
    no_repeat_ngram_size: int = field(
        default=0, metadata={"help": "Never repeat an n-gram of this size."}
    )
    sampling: bool = field(
        default=False, metadata={"help": "Sample instead of beam search (--beam samples)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_k: int = field(default=0, metadata={"help": "Sample among the k most likely (0: all)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1: off)."})
    seed: int | None = field(default=None, metadata={"help": "Sampling seed."})
    early_stop: bool = field(
        default=True,
        metadata={"help": "Finish a sentence once its beam is full (fairseq).", "cli": False},
    )
    attention: bool = field(
        default=True,
        metadata={
            "help": "Keep each hypothesis's attention and hard alignment; off, search keeps no "
            "(N*K, t, S) history (less memory and copying per step).",
            "cli": False,
        },
    )

    def __post_init__(self) -> None:
        rules = [
            (self.beam >= 1, f"--beam must be >= 1, got {self.beam}"),
            (1 <= self.nbest <= self.beam, f"--nbest must be in 1..--beam, got {self.nbest}"),
            (self.min_len >= 0, f"--min-len must be >= 0, got {self.min_len}"),
            (self.no_repeat_ngram_size >= 0, "--no-repeat-ngram-size must be >= 0"),
            (self.temperature > 0, f"--temperature must be > 0, got {self.temperature}"),
            (self.top_k >= 0, f"--top-k must be >= 0, got {self.top_k}"),
            (0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}"),
        ]
        problems = [message for ok, message in rules if not ok]
        if problems:
            raise RnnkitError("; ".join(problems))


@dataclass(frozen=True)
class Hypothesis:
    """One finished output of :func:`generate` for a sentence of source length ``S``."""

    tokens: Tensor  # (T,) long, without the final eos
    score: float  # sum(positional_scores) / (T + 1) ** lenpen
    positional_scores: Tensor  # (T + 1,) each step's log-prob, the last one eos's
    attention: Tensor | None  # (T + 1, S) attention of each step (eos's last); None without attn
    alignment: Tensor | None  # (T,) long: hard alignment, argmax source position per token


def make_rule(cfg: SearchConfig, device: torch.device) -> SearchRule:
    """The rule ``cfg`` asks for; sampling draws from a generator seeded with ``cfg.seed``."""
    if cfg.sampling:
        gen = make_generator(cfg.seed, device)
        return SamplingRule(cfg.temperature, cfg.top_k, cfg.top_p, gen)
    return BeamRule()


@dataclass
class _Active:
    """The books on the N active sentences × K slots (rows are ``n * K + slot``)."""

    sent: Tensor  # (N,) long, index of each active sentence in the input batch
    src_len: Tensor  # (N,) long
    max_len: Tensor  # (N,) long, most tokens without eos
    scores: Tensor  # (N, K) cumulative log P; -inf = dead slot
    tokens: Tensor  # (N*K, t) long, tokens so far
    positional: Tensor  # (N*K, t) their step log-probs
    attn: Tensor | None  # (N*K, t, S) their attention

    @property
    def step(self) -> int:
        return self.tokens.size(1)

    def last_tokens(self, eos: int) -> Tensor:
        """(N*K,) each row's previous token; ``eos`` before the first."""
        if self.step == 0:
            return torch.full((self.tokens.size(0),), eos, device=self.tokens.device)
        return self.tokens[:, -1]


@torch.inference_mode()
def generate(
    decoder: IncrementalDecoder,
    src_tokens: Tensor,
    src_lengths: Tensor,
    cfg: SearchConfig,
    eos: int,
    pad: int,
    unk: int,
) -> list[list[Hypothesis]]:
    """Decode ``src_tokens`` (B, S) right-padded with lengths ``src_lengths`` (B,).

    Returns, per sentence, up to ``cfg.nbest`` hypotheses best first (fewer only if every
    continuation was banned). Raises :class:`RnnkitError` if beam search is asked for a beam
    wider than the vocabulary. See the module docstring for scores, lengths and stopping.
    """
    b, k, device = src_tokens.size(0), cfg.beam, src_tokens.device
    if b == 0:
        return []
    rule = make_rule(cfg, device)
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    books = (
        finished,
        torch.zeros(b, dtype=torch.long, device=device),  # finished hypotheses per sentence
        torch.full((b,), NEG_INF, device=device),  # the K-th best finished score
    )
    active = _Active(
        sent=torch.arange(b, device=device),
        src_len=src_lengths.to(device),
        max_len=(cfg.max_len_a * src_lengths.to(device).double() + cfg.max_len_b).long(),
        scores=rule.start_scores(k, device).repeat(b, 1),
        tokens=torch.empty(b * k, 0, dtype=torch.long, device=device),
        positional=torch.empty(b * k, 0, device=device),
        attn=None,
    )
    state = decoder.encode(src_tokens, src_lengths)
    while active.sent.numel():
        if active.step == 0:  # a sentence's K slots start equal: one step per sentence, then copy
            lprobs, state, attn = decoder.step(active.last_tokens(eos)[::k], state)  # (B, V)
            beams = torch.arange(b, device=device).repeat_interleave(k)
            state, lprobs = state.reorder(beams), lprobs.index_select(0, beams)
            attn = None if attn is None else attn.index_select(0, beams)
        else:
            lprobs, state, attn = decoder.step(active.last_tokens(eos), state)  # (N*K, V)
        if not cfg.attention:
            attn = None  # no history, no alignment: the hypotheses carry None
        if active.step == 0 and not cfg.sampling and k > lprobs.size(1):
            raise RnnkitError(
                f"--beam {k} is wider than the target vocabulary ({lprobs.size(1)} symbols); "
                f"use --beam {lprobs.size(1)} or less"
            )
        lprobs = _adjust(lprobs.float(), active, cfg, eos, pad, unk)
        cand = rule.select(lprobs.view(-1, k, lprobs.size(1)), active.scores)
        _finish(active, cand, lprobs, attn, cfg, eos, books)
        active, order = _advance(active, cand, lprobs, attn, books, cfg, eos)
        if order.numel():
            state = state.reorder(order)
    return [sorted(hyps, key=lambda h: -h.score)[: cfg.nbest] for hyps in finished]


def _adjust(
    lprobs: Tensor, active: _Active, cfg: SearchConfig, eos: int, pad: int, unk: int
) -> Tensor:
    """``lprobs`` (N*K, V) with pad, unk penalty, min/max length and repeated n-grams applied
    (in place: search owns what ``step`` returns)."""
    t = active.step
    lprobs[:, pad] = NEG_INF
    lprobs[:, unk] -= cfg.unkpen
    eos_lprobs = lprobs[:, eos].clone()  # (N*K,)
    if t < cfg.min_len:
        lprobs[:, eos] = NEG_INF
    if cfg.no_repeat_ngram_size:
        banned = _repeated_ngrams(active.tokens, cfg.no_repeat_ngram_size, lprobs.size(1))
        lprobs = lprobs.masked_fill(banned, NEG_INF)
    at_max = (active.max_len <= t).repeat_interleave(cfg.beam)  # (N*K,) rows that must end now
    if at_max.any():  # eos only, with its own log-prob; this wins over min_len
        rows = at_max.nonzero().squeeze(1)  # in place: no (N*K, V) copies at the limit
        lprobs[rows] = NEG_INF
        lprobs[rows, eos] = eos_lprobs[rows]
    return lprobs


def _repeated_ngrams(tokens: Tensor, n: int, vocab: int) -> Tensor:
    """(R, V) bool: tokens that would repeat an n-gram of ``tokens`` (R, t) in the same row.

    Vectorized over rows and positions: every n-gram whose first n-1 tokens equal the row's last
    n-1 tokens bans its last token. The start symbol is not part of the history.
    """
    rows, t = tokens.shape
    if t < n:
        return torch.zeros(rows, vocab, dtype=torch.bool, device=tokens.device)
    grams = tokens.unfold(1, n, 1)  # (R, t-n+1, n)
    suffix = tokens[:, t - n + 1 :]  # (R, n-1)
    match = (grams[..., :-1] == suffix.unsqueeze(1)).all(dim=-1)  # (R, t-n+1)
    # scatter_add, not scatter: a token can be banned and not banned by different n-grams.
    hits = torch.zeros(rows, vocab, device=tokens.device)
    return hits.scatter_add_(1, grams[..., -1], match.float()) > 0


def _finish(
    active: _Active,
    cand: Candidates,
    lprobs: Tensor,
    attn: Tensor | None,
    cfg: SearchConfig,
    eos: int,
    books: tuple[list[list[Hypothesis]], Tensor, Tensor],
) -> None:
    """File the eos candidates among each sentence's best K as finished hypotheses.

    ``books`` is (finished lists, finished counts (B,), K-th best finished score (B,)), updated
    in place. The only Python loop of a step: over the hypotheses that end at it.
    """
    finished, n_done, kth_best = books
    k, t = cfg.beam, active.step
    ends = (cand.tokens[:, :k] == eos) & torch.isfinite(cand.scores[:, :k])  # (N, K)
    if not ends.any():
        return
    sent, src_len = active.sent.tolist(), active.src_len.tolist()
    touched = set()
    for n, c in ends.nonzero().tolist():
        row = n * k + int(cand.beams[n, c])
        attention = alignment = None
        if attn is not None:
            now = attn[row : row + 1].float()  # (1, S)
            steps = now if active.attn is None else torch.cat([active.attn[row], now])
            attention = steps[:, : src_len[n]]  # (t+1, S_n)
            alignment = attention[:-1].argmax(dim=1)
        hypo = Hypothesis(
            tokens=active.tokens[row].clone(),
            score=float(cand.scores[n, c]) / (t + 1) ** cfg.lenpen,
            positional_scores=torch.cat([active.positional[row], lprobs[row, eos : eos + 1]]),
            attention=attention,
            alignment=alignment,
        )
        finished[sent[n]].append(hypo)
        touched.add(sent[n])
    for s in touched:
        n_done[s] = len(finished[s])
        if len(finished[s]) >= k:
            kth_best[s] = sorted((h.score for h in finished[s]), reverse=True)[k - 1]


def _advance(
    active: _Active,
    cand: Candidates,
    lprobs: Tensor,
    attn: Tensor | None,
    books: tuple[list[list[Hypothesis]], Tensor, Tensor],
    cfg: SearchConfig,
    eos: int,
) -> tuple[_Active, Tensor]:
    """The books for the next step and the state rows (N'*K,) they come from.

    Each sentence keeps its first K candidates that do not end in eos (fewer: dead slots at
    -inf); sentences that are done (:func:`_done`) leave.
    """
    n, k = active.scores.shape
    c = cand.scores.size(1)
    device = lprobs.device
    keep = (cand.tokens != eos) & torch.isfinite(cand.scores)  # (N, C)
    rank = (~keep).long() * c + torch.arange(c, device=device)  # kept ones first, in order
    pick = rank.topk(k, dim=1, largest=False).indices  # (N, K)
    scores = cand.scores.gather(1, pick).masked_fill(~keep.gather(1, pick), NEG_INF)
    tokens = cand.tokens.gather(1, pick)  # (N, K)
    rows = cand.beams.gather(1, pick) + torch.arange(n, device=device).unsqueeze(1) * k  # (N, K)
    step_lprobs = lprobs[rows.view(-1), tokens.view(-1)].view(n, k)

    stay = (~_done(active, scores, books, cfg)).nonzero().squeeze(1)  # (N',)
    order = rows[stay].view(-1)  # (N'*K,)
    history = None
    if attn is not None:
        now = attn.float().index_select(0, order).unsqueeze(1)  # (N'*K, 1, S)
        history = now if active.attn is None else torch.cat([active.attn[order], now], dim=1)
    column = lambda x: x[stay].view(-1, 1)  # noqa: E731  (N, K) -> (N'*K, 1)
    return (
        _Active(
            sent=active.sent[stay],
            src_len=active.src_len[stay],
            max_len=active.max_len[stay],
            scores=scores[stay],
            tokens=torch.cat([active.tokens[order], column(tokens)], dim=1),
            positional=torch.cat([active.positional[order], column(step_lprobs)], dim=1),
            attn=history,
        ),
        order,
    )


def _done(
    active: _Active,
    scores: Tensor,
    books: tuple[list[list[Hypothesis]], Tensor, Tensor],
    cfg: SearchConfig,
) -> Tensor:
    """(N,) bool: sentences with no live slot, or with enough finished hypotheses.

    ``scores`` (N, K) are the slots' cumulative scores after this step. Without ``early_stop``
    "enough" also needs the K-th best finished score to reach the best score a live slot could
    still get: log P only falls, so that is its score now over the most favourable length penalty
    among the lengths still allowed (the shortest for ``lenpen`` < 0, else the longest).
    """
    _, n_done, kth_best = books
    enough = n_done[active.sent] >= cfg.beam
    if not cfg.early_stop:
        best = scores.max(dim=1).values.double()  # (N,)
        shortest = float(active.step + 2)  # tokens so far + 1 more + eos
        longest = (active.max_len + 1).double()
        bound = torch.maximum(best / shortest**cfg.lenpen, best / longest**cfg.lenpen)
        enough &= kth_best[active.sent].double() >= bound
    return enough | ~torch.isfinite(scores).any(dim=1)


def replace_unk(
    hypo_tokens: list[str],
    src_tokens: list[str],
    alignment: list[int],
    align_dict: dict[str, str] | None = None,
    unk: str = "<unk>",
) -> list[str]:
    """``hypo_tokens`` with each ``unk`` replaced through the hard ``alignment`` (fairseq's rule).

    ``alignment[i]`` is the source position of target token ``i``; the aligned source token is
    replaced by its ``align_dict`` translation when there is one, else copied.
    """
    out = list(hypo_tokens)
    for i, token in enumerate(hypo_tokens):
        if token == unk:
            src = src_tokens[alignment[i]]
            out[i] = align_dict.get(src, src) if align_dict else src
    return out
