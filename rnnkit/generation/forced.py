"""Forced decoding: the scores a model gives to *given* outputs (fairseq's ``--score-reference``).

Where :func:`~rnnkit.generation.search.generate` searches for outputs, :func:`force` walks the
given target of every sentence through the same
:class:`~rnnkit.generation.decoder.IncrementalDecoder` interface — ``encode`` once, then one
``step`` per target position with the previous *given* token — and gathers each given token's
log-probability (``eos`` included). Nothing else about the model is used, so an ensemble that
implements ``encode``/``step`` scores too, and the numbers are the ones a search would give the
same output: its positional scores, and a score ``sum / len ** lenpen`` as a hypothesis has.
Scores are natural-log probabilities (nats).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rnnkit.generation.decoder import IncrementalDecoder
from rnnkit.generation.search import Hypothesis


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[Tensor, Tensor]:
    """Right-pad id lists into (B, T) long with ``pad``; also their lengths (B,)."""
    out = torch.full((len(rows), max(map(len, rows))), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
    return out, torch.tensor([len(row) for row in rows])


@torch.inference_mode()
def force(
    decoder: IncrementalDecoder,
    src_tokens: Tensor,
    src_lengths: Tensor,
    targets: Sequence[Sequence[int]],
    eos: int,
    pad: int,
    lenpen: float = 1.0,
) -> list[Hypothesis]:
    """Score ``targets`` (one non-empty id list per sentence, normally ending in ``eos``) given
    the sources ``src_tokens`` (B, S) right-padded with lengths ``src_lengths`` (B,).

    Returns one :class:`~rnnkit.generation.search.Hypothesis` per sentence: ``tokens`` the target
    without its final ``eos``, ``positional_scores`` (T,) each given token's log-prob,
    ``score`` their sum over ``T ** lenpen``, and the attention / hard alignment when the model
    attends. A target cut short (no final ``eos``) is scored as far as it goes.
    """
    if not targets:
        return []
    device = src_tokens.device
    tgt, lengths = pad_rows(targets, pad)  # (B, T), (B,)
    tgt = tgt.to(device)
    state = decoder.encode(src_tokens, src_lengths)
    prev = torch.full((tgt.size(0),), eos, dtype=torch.long, device=device)
    scores, attns = [], []
    for t in range(tgt.size(1)):
        lprobs, state, attn = decoder.step(prev, state)  # (B, V)
        scores.append(lprobs.float().gather(1, tgt[:, t : t + 1]).squeeze(1))  # (B,)
        if attn is not None:
            attns.append(attn.float())  # (B, S)
        prev = tgt[:, t]
    positional = torch.stack(scores, dim=1).cpu()  # (B, T)
    attention = torch.stack(attns, dim=1).cpu() if attns else None  # (B, T, S)
    return [
        _hypothesis(
            tgt[i, :n].cpu(), positional[i, :n], attention, i, int(src_lengths[i]), eos, lenpen
        )  # fmt: skip
        for i, n in enumerate(lengths.tolist())
    ]


def _hypothesis(
    target: Tensor,
    positional: Tensor,
    attention: Tensor | None,
    row: int,
    src_len: int,
    eos: int,
    lenpen: float,
) -> Hypothesis:
    """The :class:`Hypothesis` of one forced target (T,) with its log-probs (T,)."""
    n = target.numel()
    ends = bool(target[-1] == eos)
    attn = None if attention is None else attention[row, :n, :src_len]  # (T, S_i)
    alignment = None
    if attn is not None:
        alignment = (attn[:-1] if ends else attn).argmax(dim=1)
    return Hypothesis(
        tokens=target[:-1] if ends else target,
        score=float(positional.sum()) / n**lenpen,
        positional_scores=positional,
        attention=attn,
        alignment=alignment,
    )
