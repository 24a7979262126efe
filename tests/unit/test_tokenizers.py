"""Tokenizers: char is exactly invertible, space splits, sentencepiece trains and round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.dictionary import EOS, Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.tokenizers import (
    TOKENIZER_REGISTRY,
    CharTokenizer,
    SentencePieceTokenizer,
    SpaceTokenizer,
    load_tokenizer,
    tokenizer_from_state,
)

unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(unicode_text)
def test_char_round_trip_is_exact_on_arbitrary_unicode(text):
    tok = CharTokenizer()
    tokens = tok.encode(text)
    assert tok.decode(tokens) == text
    assert tokens.count(EOS) == text.count("\n")  # newline is the end-of-line token


@settings(max_examples=100, deadline=None)
@given(unicode_text)
def test_char_round_trip_through_a_dictionary(text):
    tok = CharTokenizer()
    d = Dictionary()
    for t in tok.encode(text):
        if t != EOS:
            d.add_symbol(t)
    d.finalize()
    ids = d.encode(tok.encode(text), append_eos=False)
    assert tok.decode(d.decode(ids, strip_special=False)) == text


def test_char_keeps_spaces_and_tabs_as_tokens():
    assert CharTokenizer().encode("a b\tc") == ["a", " ", "b", "\t", "c"]


def test_space_tokenizer():
    tok = SpaceTokenizer()
    assert tok.encode("  the  cat\tsat ") == ["the", "cat", "sat"]
    assert tok.decode(["the", "cat", EOS]) == "the cat"


def test_sentencepiece_trains_saves_and_round_trips(tmp_path):
    corpus = tmp_path / "train.txt"
    words = ["lower", "lowest", "newer", "newest", "wider", "widest", "slow", "show"]
    corpus.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(8)) * 20)
    for model_type in ("unigram", "bpe"):
        tok = SentencePieceTokenizer.train([corpus], tmp_path, vocab_size=30, model_type=model_type)
        assert (tmp_path / "spm.model").is_file()
        again = load_tokenizer("sentencepiece", tmp_path)
        text = "newest lower show"
        assert again.encode(text) == tok.encode(text)
        assert again.decode(again.encode(text)) == text
        assert tokenizer_from_state(tok.state()).encode(text) == tok.encode(text)


def test_sentencepiece_rejects_unknown_model_type(tmp_path):
    with pytest.raises(RnnkitError, match="unigram or bpe"):
        SentencePieceTokenizer.train([tmp_path / "x"], tmp_path, 10, model_type="word")


def test_sentencepiece_needs_its_model(tmp_path):
    with pytest.raises(RnnkitError, match="spm.model: sentencepiece model not found"):
        load_tokenizer("sentencepiece", tmp_path)


def test_registry_lists_builtins_and_unknown_name_lists_valid_ones():
    assert {"space", "char", "sentencepiece"} <= set(TOKENIZER_REGISTRY.names())
    with pytest.raises(RnnkitError) as e:
        load_tokenizer("chars")
    message = str(e.value)
    assert "unknown tokenizer 'chars'" in message and "did you mean 'char'" in message
    assert "valid: char, sentencepiece, space" in message
