"""Character features (rnnkit.modules.charfeatures) and word dropout (modules.word_dropout)."""

from __future__ import annotations

import pytest
import torch

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.modules.charfeatures import BOW, EOW, UNK_CHAR, CharConfig, CharFeatures, CharVocab
from rnnkit.modules.word_dropout import WordDropout, frequency_unk_probs, word_dropout

WORDS = {"to": 50, "from": 30, "boston": 3, "denver": 1}


def dictionary() -> Dictionary:
    d = Dictionary()
    for w, n in WORDS.items():
        d.add_symbol(w, n)
    d.finalize(padding_factor=16)  # 4 specials + 4 words + 8 madeupwords
    return d


def features(kind: str) -> CharFeatures:
    torch.manual_seed(0)
    cfg = CharConfig(char_features=kind, char_embed_dim=6, char_dim=8, char_max_len=6)
    return CharFeatures.build(cfg, dictionary()).eval()


def test_vocab_encodes_words_with_markers_and_keeps_both_ends() -> None:
    vocab = CharVocab.from_dictionary(dictionary(), max_len=6)
    assert vocab.chars == sorted(set("tofromboston" + "denver"))
    ids = vocab.encode("to")
    assert ids[0] == BOW and ids[-1] == EOW and len(ids) == 4
    assert vocab.encode("boston!") == vocab.encode("boson!")  # first 3 + last 3
    assert vocab.encode("x") == [BOW, UNK_CHAR, EOW]
    table = vocab.word_table(dictionary())
    assert table.shape == (16, 8)
    assert (table[:4] == 0).all() and (table[8:] == 0).all()  # specials and madeupwords


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_shapes_and_padding_invariance(kind: str) -> None:
    feats, d = features(kind), dictionary()
    tokens = torch.tensor([[d.index("to"), d.index("boston"), d.pad_index]])
    out = feats(tokens)
    assert out.shape == (1, 3, 8)
    assert (out[0, 2] == 0).all()  # padding has no characters
    padded = torch.tensor([[d.index("to"), d.index("boston"), d.pad_index, d.pad_index],
                           [d.index("denver")] * 4])  # fmt: skip
    assert torch.allclose(feats(padded)[0, :3], out[0], atol=1e-6)
    # the same words from raw strings, with other widths of character padding
    chars = feats.vocab.encode_sentences([["to", "boston"], ["denver", "from", "a", "b"]])
    assert torch.allclose(feats(tokens[:, :2], chars[:1, :2]), out[0, :2], atol=1e-6)
    assert torch.allclose(feats(tokens, chars[:, :3])[0, :2], out[0, :2], atol=1e-6)
    narrow = feats.vocab.encode_sentences([["to"]])  # (1, 1, 4) against the table's width 8
    assert narrow.size(-1) < feats.table.size(-1)
    assert torch.allclose(feats(tokens[:, :1], narrow)[0, 0], out[0, 0], atol=1e-6)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_unseen_word_gets_its_own_features(kind: str) -> None:
    feats, d = features(kind), dictionary()
    unk_ids = torch.tensor([[d.unk_index, d.unk_index]])
    assert (feats(unk_ids) == 0).all()
    raw = feats.vocab.encode_sentences([["tobos", "denvr"]])
    out = feats(unk_ids, raw)
    assert out.abs().sum(-1).min() > 0
    assert not torch.allclose(out[0, 0], out[0, 1])


def test_state_dict_holds_weights_only_and_gradients_flow() -> None:
    feats, d = features("cnn"), dictionary()
    assert not any(k.startswith("table") for k in feats.state_dict())
    feats.train()
    feats(torch.tensor([[d.index("boston"), d.index("to")]])).sum().backward()
    assert feats.conv.weight.grad is not None and feats.conv.weight.grad.abs().sum() > 0
    assert feats.embed.weight.grad[0].abs().sum() == 0  # the padding character stays zero


def test_config_rejects_bad_values() -> None:
    with pytest.raises(RnnkitError, match="odd"):
        CharConfig(char_features="cnn", char_kernel_size=2)
    with pytest.raises(RnnkitError, match="even"):
        CharConfig(char_features="lstm", char_dim=7)


def test_word_dropout_rate_matches_alpha_over_alpha_plus_count() -> None:
    d, alpha, n = dictionary(), 0.25, 20000
    probs = frequency_unk_probs(d, alpha)
    ids = [d.index(w) for w in WORDS]
    tokens = torch.tensor(ids).repeat(n, 1)  # (n, 4): every word n times
    gen = torch.Generator().manual_seed(0)
    dropped = (word_dropout(tokens, probs, d.unk_index, gen) == d.unk_index).double().mean(0)
    for j, w in enumerate(WORDS):
        expected = alpha / (alpha + WORDS[w])
        assert abs(dropped[j].item() - expected) < 4 * (expected * (1 - expected) / n) ** 0.5 + 1e-4


def test_word_dropout_never_touches_specials_or_padding() -> None:
    d = dictionary()
    probs = frequency_unk_probs(d, alpha=1e6)  # ordinary words: dropped almost always
    assert (probs[: d.nspecial] == 0).all() and (probs[8:] == 0).all()
    specials = torch.tensor([[d.bos_index, d.pad_index, d.eos_index, 8, 9]]).repeat(100, 1)
    assert torch.equal(word_dropout(specials, probs, d.unk_index), specials)
    module = WordDropout.from_dictionary(d, rate=0.5)
    tokens = torch.full((50, 10), d.index("to"))
    assert torch.equal(module.eval()(tokens), tokens)
    assert (module.train()(tokens) == d.unk_index).any()
    assert not WordDropout.from_dictionary(d).train().active
