"""rnnkit.scoring against sacreBLEU's Python API on tiny hand-made corpora."""

from __future__ import annotations

import json

import pytest
from sacrebleu.metrics import BLEU, CHRF, TER

from rnnkit.errors import RnnkitError
from rnnkit.scoring import (
    check_lengths,
    corpus_scores,
    format_json,
    format_text,
    parse_metrics,
    read_segments,
    sentence_scores,
    split_segments,
)

HYPS = ["The cat sat on the mat.", "hello world", "", "a b c d e"]
REF1 = ["the cat sat on a mat .", "Hello there world", "empty", "a b c d e f"]
REF2 = ["A cat sat on the mat.", "hello world !", "nothing", "a b c d"]


def reference(name: str, **kw):
    return {"bleu": BLEU, "chrf": CHRF, "ter": TER}[name](**kw)


@pytest.mark.parametrize("refs", [[REF1], [REF1, REF2]], ids=["one-ref", "two-refs"])
def test_corpus_scores_equal_sacrebleu(refs):
    results = corpus_scores(HYPS, refs, "bleu,chrf,ter")
    assert [r.name for r in results] == ["BLEU", "chrF2", "TER"]
    for result, name in zip(results, ("bleu", "chrf", "ter"), strict=True):
        metric = reference(name)
        expected = metric.corpus_score(HYPS, refs)
        sig = str(metric.get_signature())
        assert result.score == expected.score
        assert result.signature == sig and f"nrefs:{len(refs)}" in sig
        assert result.text == expected.format(1, signature=sig)
        assert result.record == json.loads(expected.format(1, signature=sig, is_json=True))


def test_tokenize_and_lowercase_are_bleus_options():
    (result,) = corpus_scores(HYPS, [REF1], ["bleu"], tokenize="char", lowercase=True)
    expected = BLEU(tokenize="char", lowercase=True).corpus_score(HYPS, [REF1])
    assert result.score == expected.score
    assert "case:lc" in result.signature and "tok:char" in result.signature
    assert result.score != corpus_scores(HYPS, [REF1])[0].score


@pytest.mark.parametrize("refs", [[REF1], [REF1, REF2]], ids=["one-ref", "two-refs"])
def test_sentence_scores_equal_sacrebleu(refs):
    per_line = sentence_scores(HYPS, refs, "ter,bleu")  # reported in sacrebleu's order
    assert len(per_line) == len(HYPS)
    bleu, ter = BLEU(effective_order=True), TER()
    for i, (b, t) in enumerate(per_line):
        line_refs = [r[i] for r in refs]
        assert b.score == bleu.sentence_score(HYPS[i], line_refs).score
        assert t.score == ter.sentence_score(HYPS[i], line_refs).score
        assert "eff:yes" in b.signature


def test_format_text_aligns_on_equals_and_json_is_a_list():
    results = corpus_scores(HYPS, [REF1], "bleu,chrf,ter")
    lines = format_text(results)
    assert len({line.index(" = ") for line in lines}) == 1
    assert [line.strip() for line in lines] == [r.text for r in results]
    assert json.loads(format_json(results)) == [r.record for r in results]
    assert json.loads(format_json(results[:1])) == [results[0].record]


def test_parse_metrics_orders_dedups_and_suggests():
    assert parse_metrics("ter, BLEU,chrf,bleu") == ["bleu", "chrf", "ter"]
    with pytest.raises(RnnkitError, match="did you mean 'chrf'"):
        parse_metrics("bleu,chrff")
    with pytest.raises(RnnkitError, match="no metric"):
        parse_metrics(" , ")


def test_length_mismatch_and_empty_input_are_one_line_errors():
    with pytest.raises(RnnkitError, match=r"hyp.txt has 4 lines, r2.txt has 3"):
        check_lengths(HYPS, [REF1, REF2[:3]], "hyp.txt", ["r1.txt", "r2.txt"])
    with pytest.raises(RnnkitError, match="no lines to score"):
        corpus_scores([], [[]])
    with pytest.raises(RnnkitError, match="unknown tokenizer"):
        corpus_scores(HYPS, [REF1], tokenize="13b")


def test_segments_are_read_as_sacrebleu_reads_them(tmp_path):
    path = tmp_path / "h.txt"
    path.write_bytes(b"a b  \r\n\nlast")
    assert read_segments(path) == ["a b", "", "last"]  # empty lines are valid hypotheses
    assert split_segments(b"a b  \r\n\nlast\n") == ["a b", "", "last"]
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(RnnkitError, match=r"h.txt:2: invalid UTF-8"):
        read_segments(path)
    with pytest.raises(RnnkitError, match=r"<stdin>:1: invalid UTF-8"):
        split_segments(b"\xff\n")
    assert split_segments(b"\xff\n", errors="replace") == ["\ufffd"]
