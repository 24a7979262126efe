"""Sampling from a recurrent language model: token ids, then streamed text.

The prime is run through the model in one forward call to warm the state; after that every token
costs one single-step forward with the carried state (O(1) per token, the prefix is never re-run).
Temperature scales the logits (0 means greedy argmax), then top-k and nucleus (top-p) filtering
restrict the choice. A seeded :class:`torch.Generator` makes the output reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
from torch import Tensor

from rnnkit.dictionary import Dictionary
from rnnkit.modules.recurrent import RecurrentState
from rnnkit.reporting import get_reporter
from rnnkit.tokenizers import Tokenizer


class LanguageModel(Protocol):
    """What sampling needs from a model: ``forward(tokens (B, T), state) -> (logits, state)``.

    Normalized log-probabilities serve as logits (their softmax is the distribution itself):
    an ensemble (:class:`~rnnkit.generation.ensemble.LanguageModelEnsemble`) returns the log of
    its mean distribution, so temperature and top-k/p apply to the mean."""

    def __call__(
        self, tokens: Tensor, state: RecurrentState | None = None
    ) -> tuple[Tensor, RecurrentState]: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def eval(self) -> LanguageModel: ...


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """``logits`` (..., V) with everything outside the top-k and the top-p nucleus set to -inf.

    ``top_k`` 0 keeps all; ``top_p`` 1.0 keeps all. The nucleus is the smallest set of most
    probable tokens whose probabilities sum to at least ``top_p``.
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # A token is outside the nucleus if the tokens before it already reach top_p.
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose_token(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """One token id from ``logits`` (V,): greedy when ``temperature`` is 0, else sampled."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return int(logits.argmax())
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def sample_tokens(
    model: LanguageModel,
    prime_ids: Sequence[int],
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    banned: Sequence[int] = (),
) -> Iterator[int]:
    """Yield ``length`` token ids continuing ``prime_ids`` (at least one id).

    The prime runs in one forward call; each further token is one forward of a single time step
    with the carried state. ``banned`` ids (e.g. padding) are never produced.
    """
    if not prime_ids:
        raise ValueError("sample_tokens needs at least one prime token")
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        tokens = torch.tensor([list(prime_ids)], dtype=torch.long, device=device)  # (1, P)
        logits, state = model(tokens)  # (1, P, V)
        for i in range(length):
            last = logits[0, -1]  # (V,)
            if banned:
                last = last.index_fill(0, torch.tensor(list(banned), device=device), float("-inf"))
            token = choose_token(last, temperature, top_k, top_p, generator)
            yield token
            if i + 1 < length:  # no forward for a token nobody will ask for
                step = torch.tensor([[token]], dtype=torch.long, device=device)  # (1, 1)
                logits, state = model(step, state)  # one row: the stack runs it without oneDNN


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device``, seeded with ``seed`` (or from fresh entropy when None)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def encode_prime(dictionary: Dictionary, tokenizer: Tokenizer, prime: str) -> list[int]:
    """``</s>`` + the prime's token ids: generation starts at a line boundary, as in training.

    Tokens not in the dictionary become ``<unk>``, with one warning that names them.
    """
    pieces = tokenizer.encode(prime) if prime else []
    unknown = sorted({p for p in pieces if p not in dictionary})
    if unknown:
        shown = ", ".join(repr(p) for p in unknown[:10]) + (" …" if len(unknown) > 10 else "")
        get_reporter().warning(f"prime: {len(unknown)} unknown token(s) read as <unk>: {shown}")
    return [dictionary.eos_index] + [dictionary.index(p) for p in pieces]


def sample_text(
    model: LanguageModel,
    dictionary: Dictionary,
    tokenizer: Tokenizer,
    prime: str = "",
    length: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop: str | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[str]:
    """Yield the text of up to ``length`` sampled tokens after ``prime``, piece by piece.

    The prime itself is not repeated. Generation ends after the text first contains ``stop`` (the
    piece holding it is cut right after it). ``generator`` wins over ``seed``; pass one shared
    generator to draw several different samples reproducibly.
    """
    ids = encode_prime(dictionary, tokenizer, prime)
    gen = generator or make_generator(seed, next(model.parameters()).device)
    banned = (dictionary.pad_index, dictionary.bos_index)
    first_in_line = ids[-1] == dictionary.eos_index
    tail = ""  # the end of the text so far: enough to see `stop` straddle two pieces
    for token in sample_tokens(model, ids, length, temperature, top_k, top_p, gen, banned):
        symbol = dictionary[token]
        piece = tokenizer.stream_piece(symbol, first_in_line)
        first_in_line = token == dictionary.eos_index
        if stop:
            tail += piece
            at = tail.find(stop)
            if at >= 0:
                yield piece[: len(piece) - (len(tail) - at - len(stop))]
                return
            tail = tail[-(len(stop) - 1) :] if len(stop) > 1 else ""
        yield piece
