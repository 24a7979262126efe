"""Beam search and sampling against toy incremental decoders: exactness, batching, options."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.generation.decoder import DecodeState
from rnnkit.generation.search import SearchConfig, generate, replace_unk
from rnnkit.modules.recurrent import RecurrentState

BOS, PAD, EOS, UNK = 0, 1, 2, 3
V = 6  # 4 specials + 2 words


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors of a few elements: intra-op threads only add overhead (50x on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ToyDecoder:
    """A tiny seq2seq decoder: a random table indexed by (source key, previous token) plus a
    recurrent memory of the prefix, so a wrong ``reorder`` changes the scores.

    The source key is the sum of the real source tokens; attention is a fixed function of the
    previous token over the real source positions. ``bias`` is added to the logits of its tokens.
    """

    def __init__(self, seed: int = 0, bias: dict[int, float] | None = None, vocab: int = V):
        gen = torch.Generator().manual_seed(seed)
        keys = 5
        self.table = torch.randn(keys, vocab, vocab, generator=gen) * 2  # (key, prev, next)
        self.embed = torch.randn(vocab, 4, generator=gen)
        self.mix = torch.randn(4, 4, generator=gen) * 0.5
        self.out = torch.randn(4, vocab, generator=gen)
        self.bias = torch.zeros(vocab)
        for token, value in (bias or {}).items():
            self.bias[token] = value
        self.keys = keys

    def encode(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor) -> DecodeState:
        mask = torch.arange(src_tokens.size(1)) < src_lengths.unsqueeze(1)  # (B, S)
        key = (src_tokens * mask).sum(1) % self.keys
        hidden = RecurrentState(torch.zeros(1, src_tokens.size(0), 4))
        return DecodeState({"key": key, "src_mask": mask, "hidden": hidden, "unused": None})

    def step(self, prev_tokens, state):
        h = torch.tanh(state["hidden"].h[0] @ self.mix + self.embed[prev_tokens])  # (B, 4)
        logits = self.table[state["key"], prev_tokens] + h @ self.out + self.bias  # (B, V)
        positions = torch.arange(state["src_mask"].size(1), dtype=torch.float)
        attn_logits = torch.sin(positions * (prev_tokens.unsqueeze(1) + 1) * 0.7) * 3  # (B, S)
        attn = attn_logits.masked_fill(~state["src_mask"], float("-inf")).softmax(1)
        new = state.replace(hidden=RecurrentState(h.unsqueeze(0)))
        return logits.log_softmax(1), new, attn


class Spy:
    """A decoder wrapper that records the batch size of every step."""

    def __init__(self, decoder):
        self.decoder, self.sizes = decoder, []

    def encode(self, src_tokens, src_lengths):
        return self.decoder.encode(src_tokens, src_lengths)

    def step(self, prev_tokens, state):
        self.sizes.append(prev_tokens.size(0))
        return self.decoder.step(prev_tokens, state)


def batch(*sentences: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, S) tokens and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in sentences])
    tokens = torch.full((len(sentences), int(lengths.max())), PAD)
    for i, s in enumerate(sentences):
        tokens[i, : len(s)] = torch.tensor(s)
    return tokens, lengths


def run(decoder, sentences, **cfg):
    return generate(decoder, *batch(*sentences), SearchConfig(**cfg), EOS, PAD, UNK)


def sequence_lprobs(decoder, src: list[int], tokens: list[int]) -> list[float]:
    """Each step's log-prob of ``tokens`` + eos for one source, one step at a time."""
    state = decoder.encode(*batch(src))
    out, prev = [], EOS
    for token in [*tokens, EOS]:
        lprobs, state, _ = decoder.step(torch.tensor([prev]), state)
        out.append(float(lprobs[0, token]))
        prev = token
    return out


def exhaustive(decoder, src, words, max_len: int, lenpen: float) -> list[tuple[float, list]]:
    """Every hypothesis of 1..max_len ``words`` (then eos), best first."""
    scored = []
    for n in range(1, max_len + 1):
        for tokens in itertools.product(words, repeat=n):
            score = sum(sequence_lprobs(decoder, src, list(tokens))) / (n + 1) ** lenpen
            scored.append((score, list(tokens)))
    return sorted(scored, key=lambda st: -st[0])


def greedy(decoder, src: list[int], max_len: int, lenpen: float = 1.0) -> tuple[list, float]:
    """A hand-written greedy loop."""
    state = decoder.encode(*batch(src))
    prev, tokens, total = EOS, [], 0.0
    for t in range(max_len + 1):
        lprobs, state, _ = decoder.step(torch.tensor([prev]), state)
        lprobs = lprobs[0].clone()
        lprobs[PAD] = float("-inf")
        if t == 0:
            lprobs[EOS] = float("-inf")  # min_len 1
        if t == max_len:
            lprobs[torch.arange(V) != EOS] = float("-inf")
        prev = int(lprobs.argmax())
        total += float(lprobs[prev])
        if prev == EOS:
            break
        tokens.append(prev)
    return tokens, total / (len(tokens) + 1) ** lenpen


@pytest.mark.parametrize("lenpen", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("n_words, max_len", [(2, 3), (3, 2)])
def test_wide_beam_finds_the_exhaustive_argmax_and_nbest(lenpen, n_words, max_len):
    # A beam of (symbols it can emit)^max_len holds every prefix and every ending; for that to
    # stay within the vocabulary (a wider beam is an error), the toy has 32 symbols of which
    # only eos and ``n_words`` words have a non-zero probability.
    words = list(range(4, 4 + n_words))
    banned = {t: float("-inf") for t in range(32) if t not in (*words, EOS)}
    decoder, beam = ToyDecoder(seed=1, bias=banned, vocab=32), (n_words + 1) ** max_len
    for src in ([4, 5], [5, 5, 4]):
        (hypos,) = run(decoder, [src], beam=beam, nbest=5, max_len_b=max_len, lenpen=lenpen)
        best = exhaustive(decoder, src, words, max_len, lenpen)[:5]
        assert [h.tokens.tolist() for h in hypos] == [tokens for _, tokens in best]
        assert [h.score for h in hypos] == pytest.approx([s for s, _ in best], abs=1e-5)


def test_beam_one_is_greedy():
    decoder = ToyDecoder(seed=2)
    sources = [[4], [5, 4], [4, 4, 5], [5, 5, 5, 4]]
    hypos = run(decoder, sources, beam=1, max_len_b=8)
    for src, (hypo,) in zip(sources, hypos, strict=True):
        tokens, score = greedy(decoder, src, 8)
        assert hypo.tokens.tolist() == tokens
        assert hypo.score == pytest.approx(score, abs=1e-5)
        assert hypo.positional_scores.sum() / (len(tokens) + 1) == pytest.approx(score, abs=1e-5)


def test_batched_equals_one_sentence_at_a_time():
    decoder = ToyDecoder(seed=3)
    sources = [[4, 5, 4, 4, 5], [5], [4, 4], [5, 4, 5, 5], [4, 5, 5]]
    cfg = dict(beam=3, nbest=3, max_len_a=1.0, max_len_b=2, lenpen=0.7)
    together = run(decoder, sources, **cfg)
    for src, hypos in zip(sources, together, strict=True):
        (alone,) = run(decoder, [src], **cfg)
        assert [h.tokens.tolist() for h in hypos] == [h.tokens.tolist() for h in alone]
        assert [h.score for h in hypos] == pytest.approx([h.score for h in alone], abs=1e-5)
        assert [h.alignment.tolist() for h in hypos] == [h.alignment.tolist() for h in alone]


def test_finished_sentences_leave_the_active_batch():
    spy = Spy(ToyDecoder(seed=4, bias={EOS: -5.0}))
    sources = [[4] * n for n in range(1, 6)]
    run(spy, sources, beam=2, max_len_a=1.0, max_len_b=0)  # sentence n stops by n tokens
    # The first step runs once per sentence (its beams start equal), then 2 rows per sentence.
    assert spy.sizes[0] == 5
    assert spy.sizes[1:] == sorted(spy.sizes[1:], reverse=True)
    assert spy.sizes[1] == 10 and spy.sizes[-1] == 2


def test_min_len_and_max_len():
    eager = ToyDecoder(seed=5, bias={EOS: 8.0})
    assert all(len(h.tokens) == 1 for h in run(eager, [[4]], beam=3, nbest=3)[0])
    assert all(len(h.tokens) >= 3 for h in run(eager, [[4]], beam=3, nbest=3, min_len=3)[0])
    endless = ToyDecoder(seed=5, bias={EOS: -8.0})
    (hypos,) = run(endless, [[4, 4, 5, 4]], beam=3, nbest=3, max_len_a=0.5, max_len_b=1)
    assert all(len(h.tokens) == 3 for h in hypos)  # 0.5 * 4 + 1
    (hypo,), (other,) = run(
        endless, [[4, 4], [4, 4, 4, 4, 4, 4]], beam=2, max_len_a=1.0, max_len_b=0
    )
    assert (len(hypo.tokens), len(other.tokens)) == (2, 6)
    (hypo,) = run(eager, [[4]], beam=2, min_len=5, max_len_b=2)[0]  # the maximum wins
    assert len(hypo.tokens) == 2


def test_unkpen_removes_unknowns():
    decoder = ToyDecoder(seed=6, bias={UNK: 3.0})
    (plain,) = run(decoder, [[4, 5]], beam=3, max_len_b=4)
    assert UNK in plain[0].tokens.tolist()
    (penalized,) = run(decoder, [[4, 5]], beam=3, max_len_b=4, unkpen=100.0)
    assert UNK not in penalized[0].tokens.tolist()


def ngrams(tokens: list[int], n: int) -> list[tuple]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_size(n):
    decoder = ToyDecoder(seed=7, bias={4: 4.0, EOS: -6.0})
    (plain,) = run(decoder, [[4, 5]], beam=4, nbest=4, max_len_b=7)
    assert any(len(set(ngrams(h.tokens.tolist(), n))) < len(h.tokens) - n + 1 for h in plain)
    (hypos,) = run(decoder, [[4, 5]], beam=4, nbest=4, max_len_b=7, no_repeat_ngram_size=n)
    for h in hypos:
        grams = ngrams(h.tokens.tolist(), n)
        assert len(set(grams)) == len(grams)


def test_nbest_is_sorted_and_scores_are_normalized_log_probs():
    decoder = ToyDecoder(seed=8)
    (hypos,) = run(decoder, [[4, 5, 5]], beam=5, nbest=4, max_len_b=5, lenpen=1.3)
    assert len(hypos) == 4
    assert [h.score for h in hypos] == sorted((h.score for h in hypos), reverse=True)
    for h in hypos:
        lprobs = sequence_lprobs(decoder, [4, 5, 5], h.tokens.tolist())
        assert h.positional_scores.tolist() == pytest.approx(lprobs, abs=1e-5)
        assert h.score == pytest.approx(sum(lprobs) / (len(h.tokens) + 1) ** 1.3, abs=1e-5)


def test_without_early_stop_the_search_goes_on_until_nothing_can_win():
    gains = []
    for seed in range(6):
        decoder, src = ToyDecoder(seed=seed), [[4, 5], [5, 4, 4]]
        stop = run(decoder, src, beam=2, max_len_b=6, lenpen=2.0)
        more = run(decoder, src, beam=2, max_len_b=6, lenpen=2.0, early_stop=False)
        gains += [b.score - a.score for (a,), (b,) in zip(stop, more, strict=True)]
    assert min(gains) >= -1e-6 and max(gains) > 0.01  # a superset of finished hypotheses
    # with log P alone (lenpen 0) the bound ends the search long before the maximum of 50
    steps = []
    for early_stop in (True, False):
        spy = Spy(ToyDecoder(seed=1))
        run(spy, [[4, 5]], beam=2, max_len_b=50, lenpen=0.0, early_stop=early_stop)
        steps.append(len(spy.sizes))
    assert steps[0] < steps[1] < 51


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    decoder = ToyDecoder(seed=9)
    sources = [[4], [5, 4], [4, 4, 5]]
    cfg = dict(sampling=True, beam=3, nbest=3, max_len_b=6, seed=11)
    first, again = run(decoder, sources, **cfg), run(decoder, sources, **cfg)
    tokens = lambda out: [[h.tokens.tolist() for h in hs] for hs in out]  # noqa: E731
    assert tokens(first) == tokens(again)
    assert tokens(first) != tokens(run(decoder, sources, **{**cfg, "seed": 12}))
    for hypos in first:
        assert len(hypos) == 3
        assert [h.score for h in hypos] == sorted((h.score for h in hypos), reverse=True)
    top1 = run(decoder, sources, sampling=True, beam=1, top_k=1, max_len_b=6, temperature=0.7)
    assert tokens(top1) == tokens(run(decoder, sources, beam=1, max_len_b=6))


def test_hard_alignment_is_the_attention_argmax():
    sources = [[4, 5, 4, 5, 4], [5, 4]]
    out = run(ToyDecoder(seed=10), sources, beam=3, nbest=3, max_len_b=5)
    for src, hypos in zip(sources, out, strict=True):
        for h in hypos:
            assert h.attention.shape == (len(h.tokens) + 1, len(src))
            assert h.attention.sum(1).tolist() == pytest.approx([1.0] * (len(h.tokens) + 1))
            assert h.alignment.tolist() == h.attention[:-1].argmax(1).tolist()


def test_replace_unk():
    src = ["das", "Haus", "ist", "blau"]
    hypo = ["the", "<unk>", "is", "<unk>"]
    assert replace_unk(hypo, src, [0, 1, 2, 3]) == ["the", "Haus", "is", "blau"]
    assert replace_unk(hypo, src, [0, 1, 2, 3], {"Haus": "house"}) == ["the", "house", "is", "blau"]
    # end to end: every unk becomes the source token it attends to most
    (h,) = run(ToyDecoder(seed=6, bias={UNK: 5.0}), [[4, 5, 4]], beam=2, max_len_b=3)[0]
    words = ["<s>", "<pad>", "</s>", "<unk>", "a", "b"]
    fixed = replace_unk([words[t] for t in h.tokens], ["a", "b", "a"], h.alignment.tolist())
    assert "<unk>" not in fixed and len(fixed) == len(h.tokens)


def test_beam_wider_than_the_vocabulary_is_a_clear_error():
    with pytest.raises(RnnkitError, match=r"--beam 7 is wider than the target vocabulary \(6"):
        run(ToyDecoder(), [[4]], beam=7)
    with pytest.raises(RnnkitError, match="--nbest"):
        SearchConfig(beam=2, nbest=3)


def test_decode_state_reorders_tensors_and_nested_states():
    state = DecodeState(
        {"enc": torch.arange(6).view(3, 2), "h": RecurrentState(torch.arange(3.0).view(1, 3, 1))}
    )
    picked = state.reorder(torch.tensor([2, 2, 0]))
    assert picked["enc"].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert picked["h"].h.view(-1).tolist() == [2.0, 2.0, 0.0]
