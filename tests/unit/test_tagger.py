"""``rnn_tagger`` and ``rnn_classifier``: shapes, padding invariance, pooling, config, presets."""

from __future__ import annotations

import pytest
import torch

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import ARCH_REGISTRY, resolve_arch
from rnnkit.models.tagger import RNNClassifier, RNNTagger, SentencePooling

TINY = {"embed_dim": 8, "hidden_size": 8}


def vocab(*symbols: str) -> Dictionary:
    d = Dictionary()
    for s in symbols:
        d.add_symbol(s)
    return d


WORDS, TAGS, LABELS = vocab(*"abcdef"), vocab("O", "B-x", "I-x"), vocab("p", "q", "r")


def tagger(**cfg) -> RNNTagger:
    torch.manual_seed(0)
    _, c = resolve_arch("rnn_tagger", {**TINY, "label_head": True, **cfg})
    return RNNTagger.build(c, WORDS, TAGS, LABELS).eval()


def classifier(**cfg) -> RNNClassifier:
    torch.manual_seed(0)
    _, c = resolve_arch("rnn_classifier", {**TINY, **cfg})
    return RNNClassifier.build(c, WORDS, LABELS).eval()


# Three sentences of lengths 5, 2, 3, right-padded with <pad> (1).
TOKENS = torch.tensor([[4, 5, 6, 7, 8], [9, 4, 1, 1, 1], [5, 5, 6, 1, 1]])
LENGTHS = torch.tensor([5, 2, 3])


def test_tagger_shapes():
    tag_logits, label_logits = tagger()(TOKENS, LENGTHS)
    assert tag_logits.shape == (3, 5, len(TAGS)) and label_logits.shape == (3, len(LABELS))
    tag_logits, label_logits = tagger(label_head=False)(TOKENS, LENGTHS)
    assert label_logits is None


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_a_sentence_alone_equals_it_in_a_padded_batch(cell, pooling):
    """Packing keeps the padding out of both directions and out of the pooled label."""
    model = tagger(cell=cell, pooling=pooling, num_layers=2)
    tags, labels = model(TOKENS, LENGTHS)
    for i, n in enumerate(LENGTHS.tolist()):
        alone_tags, alone_label = model(TOKENS[i : i + 1, :n], LENGTHS[i : i + 1])
        torch.testing.assert_close(tags[i, :n], alone_tags[0])
        torch.testing.assert_close(labels[i], alone_label[0])


def test_padding_would_leak_into_the_backward_direction_without_packing():
    """The property above is not vacuous: an unpacked BiLSTM reads the padding backwards."""
    model = tagger()
    x = model.encoder.embed(TOKENS)
    unpacked, _ = model.encoder.rnn(x)
    packed, _ = model.encoder(TOKENS, LENGTHS)
    assert not torch.allclose(unpacked[1, :2], packed[1, :2])
    assert torch.equal(packed[1, 2:], torch.zeros_like(packed[1, 2:]))  # zero past the end


def test_unidirectional_classifier_last_state_is_the_last_real_step():
    model = classifier(bidirectional=False, pooling="last")
    out, final = model.encoder(TOKENS, LENGTHS)
    for i, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(final[i], out[i, n - 1])
    assert model(TOKENS, LENGTHS).shape == (3, len(LABELS))


def test_classifier_pooling_ignores_padding():
    model = classifier(pooling="max")
    batch = model(TOKENS, LENGTHS)
    alone = model(TOKENS[1:2, :2], LENGTHS[1:2])
    torch.testing.assert_close(batch[1], alone[0])


def test_empty_sentence_is_read_as_one_pad():
    model = tagger()
    tags, labels = model(torch.tensor([[1, 1], [4, 5]]), torch.tensor([0, 2]))
    assert torch.isfinite(tags).all() and torch.isfinite(labels).all()


def test_mean_and_attention_pooling_weight_only_real_steps():
    out = torch.arange(12.0).view(1, 4, 3)
    lengths = torch.tensor([2])
    mean = SentencePooling("mean", 3)(out, out[:, 0], lengths)
    torch.testing.assert_close(mean, out[:, :2].mean(1))
    attn = SentencePooling("attention", 3)
    pooled = attn(out, out[:, 0], lengths)
    assert ((pooled >= out[0, 0]) & (pooled <= out[0, 1])).all()  # a convex mix of steps 0, 1


def test_config_errors_are_one_line():
    assert resolve_arch("rnn_tagger", {"cell": "jordan_tanh"})[1].cell == "jordan_tanh"  # any cell
    with pytest.raises(RnnkitError, match="did you mean"):
        resolve_arch("rnn_tagger", {"cell": "lstn"})
    with pytest.raises(RnnkitError, match="pooling"):
        resolve_arch("rnn_classifier", {"pooling": "sum"})
    with pytest.raises(RnnkitError, match="--dropout must be in"):
        resolve_arch("rnn_tagger", {"dropout": 1.0})
    with pytest.raises(RnnkitError, match="--label-weight"):
        resolve_arch("rnn_tagger", {"label_weight": -1})
    _, cfg = resolve_arch("rnn_tagger", {"label_head": True})
    with pytest.raises(RnnkitError, match="--label-head needs labels"):
        RNNTagger.build(cfg, WORDS, TAGS, None)


def test_presets_resolve_to_their_models():
    assert ARCH_REGISTRY.get("atis_bilstm").model == "rnn_tagger"
    cls, cfg = resolve_arch("atis_bilstm")
    assert cls is RNNTagger and cfg.label_head and cfg.bidirectional
    cls, cfg = resolve_arch("intent_bilstm")
    assert cls is RNNClassifier and cls.task_name == "classification"
