"""Sampling: determinism, greedy/top-k/top-p rules, O(1) cost per token, text streaming."""

from __future__ import annotations

import pytest
import torch

from rnnkit.dictionary import Dictionary
from rnnkit.generation.sampling import filter_logits, sample_text, sample_tokens
from rnnkit.models.rnn_lm import RNNLanguageModel, RNNLMConfig
from rnnkit.reporting import Reporter, get_reporter, set_reporter
from rnnkit.tokenizers import CharTokenizer, SpaceTokenizer


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    d = Dictionary()
    for w in "abcdef":
        d.add_symbol(w)
    return d


@pytest.fixture(scope="module")
def model(dictionary) -> RNNLanguageModel:
    torch.manual_seed(0)
    cfg = RNNLMConfig(embed_dim=8, hidden_size=8, num_layers=2, init_range=1.0)
    return RNNLanguageModel.build(cfg, dictionary)


def draw(model, seed: int, **kw) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return list(sample_tokens(model, [2, 4, 5], 30, generator=gen, **kw))


def test_same_seed_same_tokens_different_seed_different(model):
    assert draw(model, 7) == draw(model, 7)
    assert draw(model, 7, top_p=0.9, top_k=5) == draw(model, 7, top_p=0.9, top_k=5)
    assert draw(model, 7) != draw(model, 8)


def greedy_reference(model, prime: list[int], length: int) -> list[int]:
    """Re-run the whole prefix each step and take the argmax: slow but obviously right."""
    ids = list(prime)
    with torch.no_grad():
        for _ in range(length):
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    return ids[len(prime) :]


def test_temperature_zero_is_greedy_and_top_k_one_equals_it(model):
    expected = greedy_reference(model.eval(), [2, 4, 5], 12)
    assert list(sample_tokens(model, [2, 4, 5], 12, temperature=0.0)) == expected
    top1 = sample_tokens(model, [2, 4, 5], 12, top_k=1, generator=torch.Generator().manual_seed(3))
    assert list(top1) == expected
    assert len(set(expected)) >= 1 and len(expected) == 12


def test_filter_logits_top_k_and_minimal_nucleus():
    probs = torch.tensor([0.05, 0.5, 0.3, 0.15])
    logits = probs.log()
    kept = lambda out: torch.isfinite(out).nonzero().flatten().tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2)) == [1, 2]
    assert kept(filter_logits(logits, top_p=0.5)) == [1]  # 0.5 alone reaches 0.5
    assert kept(filter_logits(logits, top_p=0.6)) == [1, 2]  # the smallest set with mass >= 0.6
    assert kept(filter_logits(logits, top_p=0.95)) == [1, 2, 3]
    assert kept(filter_logits(logits, top_p=0.96)) == [0, 1, 2, 3]
    assert kept(filter_logits(logits, top_k=3, top_p=0.6)) == [1, 2]
    batch = filter_logits(torch.stack([logits, logits.flip(0)]), top_p=0.6)
    assert torch.isfinite(batch).sum(-1).tolist() == [2, 2]
    with pytest.raises(ValueError):
        filter_logits(logits, top_p=0.0)


def test_prime_in_one_call_then_one_step_per_token(model):
    calls: list[int] = []
    hook = model.register_forward_pre_hook(lambda m, args: calls.append(args[0].size(1)))
    try:
        out = list(sample_tokens(model, [2, 4, 5, 6, 7], 6, generator=torch.Generator()))
    finally:
        hook.remove()
    assert len(out) == 6
    # The prime runs once; then one single-step forward per token except the last (not needed).
    assert calls == [5, 1, 1, 1, 1, 1]


def test_sample_text_streams_seeded_and_stops(model, dictionary):
    tok = CharTokenizer()
    text = "".join(sample_text(model, dictionary, tok, "ab", 40, seed=5))
    assert text == "".join(sample_text(model, dictionary, tok, "ab", 40, seed=5))
    assert set(text.replace("<unk>", "")) <= set("abcdef\n") and 0 < len(text) <= 5 * 40
    stopped = "".join(sample_text(model, dictionary, tok, "ab", 40, seed=5, stop=text[3:5]))
    assert stopped == text[: text.index(text[3:5]) + 2]


def test_sample_text_space_tokens_and_unknown_prime_warns(model, dictionary):
    warnings: list[str] = []

    class Capture(Reporter):
        def warning(self, message: str) -> None:
            warnings.append(message)

    previous = get_reporter()
    set_reporter(Capture())
    try:
        pieces = list(sample_text(model, dictionary, SpaceTokenizer(), "a zz b", 8, seed=1))
    finally:
        set_reporter(previous)
    assert len(warnings) == 1 and "'zz'" in warnings[0]
    assert len(pieces) == 8 and pieces[0].startswith(" ")  # continues the prime's line
    empty = list(sample_text(model, dictionary, SpaceTokenizer(), "", 8, temperature=0))
    assert empty[0] == "\n" or not empty[0].startswith(" ")  # starts a fresh line after </s>
