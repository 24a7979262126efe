"""Encoder-decoder models: every decoder style decodes incrementally exactly as the full pass,
padding changes nothing, copy extends the vocabulary, and search over a real model batches."""

from __future__ import annotations

import pytest
import torch

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.generation.search import SearchConfig, generate
from rnnkit.models import resolve_arch
from rnnkit.modules.encoder import reverse_padded

SMALL = {"encoder_embed_dim": 8, "encoder_hidden_size": 8, "decoder_embed_dim": 6,
         "decoder_hidden_size": 8}  # fmt: skip

VARIANTS = [
    ("seq2seq", {}),
    ("seq2seq_cho", {}),
    ("attention_seq2seq", {}),
    ("attention_seq2seq", {"input_feeding": False}),
    (
        "attention_seq2seq",
        {"attention": "bahdanau", "input_feeding": False, "encoder_bidirectional": True},
    ),  # fmt: skip
    ("attention_seq2seq", {"attention_mode": "local-p", "attention_window": 2}),
    (
        "attention_seq2seq",
        {
            "attention_mode": "local-m",
            "attention_window": 1,
            "attention": "dot",
            "encoder_bidirectional": True,
            "encoder_hidden_size": 4,
        },
    ),  # fmt: skip
    (
        "attention_seq2seq",
        {
            "copy": True,
            "residual": True,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "share_decoder_input_output_embed": True,
        },
    ),  # fmt: skip
    ("attention_seq2seq", {"attention": "concat", "cell": "gru", "decoder_layers": 3}),
    ("bahdanau_rnnsearch", {}),
]


def dictionaries() -> tuple[Dictionary, Dictionary]:
    src, tgt = Dictionary(), Dictionary()
    for w in "a b c d e f".split():
        src.add_symbol(w)
    for w in "a b c x y".split():
        tgt.add_symbol(w)
    return src, tgt


def build(arch: str, overrides: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    src, tgt = dictionaries()
    cls, cfg = resolve_arch(arch, SMALL, overrides)
    return cls.build(cfg, src, tgt).eval()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 3, 1])
    src = torch.randint(4, 10, (3, 5), generator=g)
    for i, n in enumerate(lengths.tolist()):
        src[i, n - 1], src[i, n:] = 2, 1  # </s>, then padding
    prev = torch.randint(4, 9, (3, 4), generator=g)
    prev[:, 0] = 2
    return src, lengths, prev


@pytest.mark.parametrize(("arch", "overrides"), VARIANTS)
def test_incremental_decoding_equals_the_full_pass(arch: str, overrides: dict) -> None:
    model = build(arch, overrides)
    src, lengths, prev = batch()
    logits, attn = model(src, lengths, prev)  # (B, T, V)
    full = logits.log_softmax(-1)
    state = model.encode(src, lengths, extend=False)
    steps = []
    for t in range(prev.size(1)):
        log_probs, state, _ = model.step(prev[:, t], state)
        steps.append(log_probs)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(full.exp().sum(-1), torch.ones(3, 4))
    if attn is not None:  # padding gets no attention
        assert attn[1, :, 3:].abs().max() == 0 and attn[2, :, 1:].abs().max() == 0


@pytest.mark.parametrize(("arch", "overrides"), VARIANTS)
def test_padding_changes_nothing(arch: str, overrides: dict) -> None:
    model = build(arch, overrides)
    src, lengths, prev = batch()
    full, _ = model(src, lengths, prev)
    alone, _ = model(src[1:2, :3], lengths[1:2], prev[1:2])
    full, alone = full.log_softmax(-1), alone.log_softmax(-1)
    torch.testing.assert_close(alone, full[1:2], atol=1e-5, rtol=1e-5)


def test_reverse_source_keeps_eos_last() -> None:
    src = torch.tensor([[4, 5, 6, 2], [7, 2, 1, 1]])
    assert reverse_padded(src, torch.tensor([4, 2])).tolist() == [[6, 5, 4, 2], [7, 2, 1, 1]]


def test_copy_extends_the_vocabulary_with_source_words() -> None:
    model = build("attention_seq2seq", {"copy": True})
    src, lengths, _ = batch()
    src[0, 0] = 9  # "f": in the source dictionary only
    state = model.encode(src, lengths)
    log_probs, _, _ = model.step(torch.full((3,), 2), state)
    v = model.vocab_size
    assert log_probs.size(1) == v + len(model.src_to_tgt)
    assert log_probs[0, v + 9] > -20  # copyable as itself
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3))
    training, _ = model(src, lengths, torch.full((3, 1), 2))
    assert training.size(-1) == v  # training credits it to <unk> instead


def test_config_rules_are_clear_errors() -> None:
    with pytest.raises(RnnkitError, match="input-feeding needs a Luong"):
        resolve_arch("attention_seq2seq", {"attention": "bahdanau"})
    with pytest.raises(RnnkitError, match="copy needs an --attention"):
        resolve_arch("seq2seq", {"copy": True})
    with pytest.raises(RnnkitError, match="bridge linear"):
        build("seq2seq", {"decoder_hidden_size": 5})


@pytest.mark.parametrize("arch", ["attention_seq2seq", "seq2seq_cho"])
def test_batched_search_equals_one_sentence_at_a_time(arch: str) -> None:
    model = build(arch, {})
    src, lengths, _ = batch()
    cfg = SearchConfig(beam=3, nbest=2, max_len_b=6)
    together = generate(model, src, lengths, cfg, eos=2, pad=1, unk=3)
    for i in range(3):
        n = int(lengths[i])
        alone = generate(model, src[i : i + 1, :n], lengths[i : i + 1], cfg, eos=2, pad=1, unk=3)
        assert [h.tokens.tolist() for h in alone[0]] == [h.tokens.tolist() for h in together[i]]
        for a, b in zip(alone[0], together[i], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_beam_one_is_greedy_on_a_real_model() -> None:
    model = build("attention_seq2seq", {})
    src, lengths, _ = batch()
    hypos = generate(model, src, lengths, SearchConfig(beam=1, max_len_b=5), eos=2, pad=1, unk=3)
    state, prev = model.encode(src, lengths), torch.full((3,), 2)
    greedy: list[list[int]] = [[] for _ in range(3)]
    done = [False] * 3
    for t in range(6):
        log_probs, state, _ = model.step(prev, state)
        log_probs[:, 1] = float("-inf")  # pad is never generated
        if t == 0:
            log_probs[:, 2] = float("-inf")  # --min-len 1
        if t == 5:  # the max length forces </s>
            break
        prev = log_probs.argmax(dim=1)
        for i, tok in enumerate(prev.tolist()):
            if not done[i]:
                done[i] = tok == 2
                if not done[i]:
                    greedy[i].append(tok)
    assert [h[0].tokens.tolist() for h in hypos] == greedy
