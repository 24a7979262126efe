"""Dictionary: fairseq's special symbols, finalize (threshold, nwords, padding), dict.txt I/O."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError


def built(counts: dict[str, int], **finalize) -> Dictionary:
    d = Dictionary()
    d.update(Counter(counts))
    d.finalize(**finalize)
    return d


def test_specials_have_fairseq_order_and_indices():
    d = Dictionary()
    assert d.symbols == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (d.bos_index, d.pad_index, d.eos_index, d.unk_index) == (0, 1, 2, 3)
    assert d.nspecial == 4


def test_finalize_sorts_by_count_then_alphabetically_and_pads_to_8():
    d = built({"b": 2, "a": 2, "c": 5, "d": 1})
    assert d.symbols[4:8] == ["c", "a", "b", "d"]
    assert len(d) == 8  # 4 specials + 4 words, already a multiple of 8
    d = built({"x": 1})
    assert len(d) == 8 and d.symbols[5:] == ["madeupword0000", "madeupword0001", "madeupword0002"]


def test_threshold_and_nwords():
    counts = {"a": 5, "b": 3, "c": 1}
    assert built(counts, threshold=3, padding_factor=1).symbols[4:] == ["a", "b"]
    # nwords counts the specials, as in fairseq
    assert built(counts, nwords=5, padding_factor=1).symbols[4:] == ["a"]
    assert built(counts, nwords=-1, padding_factor=1).symbols[4:] == ["a", "b", "c"]


def test_encode_appends_eos_and_maps_unknown_to_unk():
    d = built({"a": 1, "b": 1})
    assert d.encode(["a", "zzz", "b"]) == [d.index("a"), 3, d.index("b"), 2]
    assert d.encode(["a"], append_eos=False) == [d.index("a")]
    assert d.decode(d.encode(["a", "b"])) == ["a", "b"]


def test_save_load_round_trip_keeps_whitespace_tokens(tmp_path):
    d = built({"hello": 3, " ": 2, "\t": 2, "a b": 1, "ü": 1})
    path = tmp_path / "dict.txt"
    d.save(path)
    loaded = Dictionary.load(path)
    assert loaded == d and loaded.count == d.count
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "hello 3"  # token count, most frequent first, no specials
    assert "<unk>" not in path.read_text(encoding="utf-8")


tokens = st.text(
    alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), min_size=1
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(tokens, st.integers(1, 1000), max_size=20))
def test_dict_txt_round_trip_on_arbitrary_tokens(counts):
    counts = {t: n for t, n in counts.items() if t not in Dictionary().indices}
    d = built(counts)
    again = Dictionary.from_lines(d.to_lines())
    assert again == d and again.count == d.count


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1\nnocount\n", ":2: expected '<token> <count>'"),
        ("a 1\na 2\n", ":2: duplicate token 'a'"),
        ("a 1\nb x #fairseq:overwrite\n", ":2: expected '<token> <count>'"),
    ],
)
def test_malformed_dict_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "dict.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RnnkitError, match=message) as e:
        Dictionary.load(path)
    assert str(path) in str(e.value)


def test_missing_dict_file(tmp_path):
    with pytest.raises(RnnkitError, match="no such dictionary file"):
        Dictionary.load(tmp_path / "nope.txt")
