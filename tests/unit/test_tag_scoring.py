"""CoNLL span F1 and tagging accuracies in rnnkit.scoring, on hand-made BIO sequences.

Expected spans follow conlleval.pl (CoNLL-2000) for BIO input: an ``I-X`` with no open ``X``
span before it starts one, and a span is correct only with the same start, end and type.
"""

from __future__ import annotations

import pytest

from rnnkit.errors import RnnkitError
from rnnkit.scoring import (
    Accuracy,
    SpanCounts,
    bio_spans,
    format_text,
    label_accuracy,
    metric_family,
    span_counts,
    tag_scores,
    token_accuracy,
)


@pytest.mark.parametrize(
    "tags, spans",
    [
        ("O O O", []),
        ("B-a I-a O B-b", [(0, 2, "a"), (3, 4, "b")]),
        ("B-a B-a", [(0, 1, "a"), (1, 2, "a")]),  # B always begins a new span
        ("B-a I-a I-a", [(0, 3, "a")]),
        ("I-a I-a O", [(0, 2, "a")]),  # I- at the start begins a span
        ("O I-a", [(1, 2, "a")]),  # I- after O begins a span
        ("B-a I-b I-b", [(0, 1, "a"), (1, 3, "b")]),  # I- of another type begins a span
        ("I-a I-b I-a", [(0, 1, "a"), (1, 2, "b"), (2, 3, "a")]),
        ("B-a <unk> I-a", [(0, 1, "a"), (2, 3, "a")]),  # a non-BIO tag is outside
        ("B- I-a", [(1, 2, "a")]),  # a prefix with no type is outside too
        ("B-from-loc I-from-loc", [(0, 2, "from-loc")]),  # the type is all after the first -
        ("", []),
    ],
)
def test_bio_spans_follow_conlleval(tags, spans):
    assert bio_spans(tags.split()) == spans


def test_exact_boundaries_and_type_are_required():
    gold = [["B-a", "I-a", "O", "B-b"]]
    assert span_counts(gold, [["B-a", "I-a", "O", "B-b"]]) == SpanCounts(2, 2, 2)
    assert span_counts(gold, [["B-a", "O", "O", "B-b"]]).correct == 1  # too short
    assert span_counts(gold, [["B-a", "I-a", "I-a", "B-b"]]).correct == 1  # too long
    assert span_counts(gold, [["B-c", "I-c", "O", "B-b"]]).correct == 1  # wrong type
    assert span_counts(gold, [["O", "I-a", "O", "B-b"]]).correct == 1  # starts late


def test_malformed_prediction_is_read_as_conlleval_reads_it():
    # conlleval: "I-a I-a" (no B) is one span a[0:2], and matches a gold "B-a I-a".
    assert span_counts([["B-a", "I-a"]], [["I-a", "I-a"]]) == SpanCounts(1, 1, 1)
    # "B-a I-b" is two one-token spans; neither is the gold a[0:2].
    assert span_counts([["B-a", "I-a"]], [["B-a", "I-b"]]) == SpanCounts(1, 2, 0)


def test_precision_recall_f1_over_a_corpus():
    gold = [["B-a", "I-a", "O", "B-b"], ["B-c", "O"], ["O"]]
    pred = [["B-a", "I-a", "O", "O"], ["B-c", "B-d"], ["B-e"]]
    c = span_counts(gold, pred)  # gold 3, found 4, correct 2 (a[0:2], c[0:1])
    assert (c.gold, c.found, c.correct) == (3, 4, 2)
    assert c.precision == pytest.approx(50.0) and c.recall == pytest.approx(200 / 3)
    assert c.f1 == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))


def test_no_spans_score_zero_not_nan():
    c = span_counts([["O"]], [["O"]])
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)


def test_token_and_label_accuracy():
    assert token_accuracy([["O", "B-a"], ["I-a"]], [["O", "B-b"], ["I-a"]]) == Accuracy(2, 3)
    assert Accuracy(2, 3).score == pytest.approx(200 / 3) and Accuracy(0, 0).score == 0.0
    acc = label_accuracy(["x", "y#z", "unseen"], ["x ", "y#z", "x"])
    assert acc == Accuracy(2, 3)


def test_misaligned_sentences_name_the_line():
    with pytest.raises(RnnkitError, match=r"hyp:2: 1 tags, ref:2 has 2"):
        tag_scores(["O", "O"], ["O", "O O"], "f1", "hyp", "ref")
    with pytest.raises(RnnkitError, match="line counts differ"):
        tag_scores(["O"], ["O", "O"], "acc")
    # label_acc compares whole lines, so tag counts do not matter
    assert tag_scores(["a b"], ["a"], "label_acc")[0].score == 0.0


def test_tag_scores_text_and_records():
    hyps, refs = ["B-a I-a O", "O B-b"], ["B-a I-a O", "B-b O"]
    results = tag_scores(hyps, refs, "label_acc,acc,f1")
    assert [r.name for r in results] == ["F1", "Acc", "LabelAcc"]  # reporting order
    f1, acc, label = results
    assert f1.record == {"name": "F1", "score": 50.0, "precision": 50.0, "recall": 50.0,
                         "gold": 2, "found": 2, "correct": 1}  # fmt: skip
    assert acc.text == "Acc = 60.00 (3/5 tags)" and label.text == "LabelAcc = 50.00 (1/2 lines)"
    lines = format_text(results)
    assert lines[0].startswith("      F1 = 50.00 (P 50.00, R 50.00; 2 gold spans, 2 found")
    assert len({line.index(" = ") for line in lines}) == 1  # aligned on "="


def test_metric_family_routes_and_refuses_mixes():
    assert metric_family("bleu,chrf") == "text" and metric_family("f1, acc") == "tags"
    with pytest.raises(RnnkitError, match="mixes text metrics"):
        metric_family("bleu,f1")
    with pytest.raises(RnnkitError, match=r"choose from bleu, chrf, ter, f1, acc, label_acc"):
        metric_family("f2")
    with pytest.raises(RnnkitError, match="unknown metric 'bleu'"):
        tag_scores(["O"], ["O"], "bleu")
