"""Text metrics (sacreBLEU's BLEU, chrF, TER) and tagging metrics (CoNLL span F1, accuracy).

Thin wrappers over sacreBLEU's Python API whose results carry the exact text line and JSON record
the ``sacrebleu`` command line prints, signature included, so ``rnnkit score --sys`` and
``sacrebleu`` agree to the digit. Metrics are configured as that command line configures them by
default: ``tokenize`` and ``lowercase`` are BLEU's options (chrF stays case-sensitive and TER
case-insensitive, as there), sentence-level BLEU uses effective order, and lines are read the way
it reads them (split on ``\\n``, trailing whitespace dropped).

Tagging metrics are written here, not wrapped: :func:`bio_spans` reads BIO tags by conlleval's
rules, :func:`span_counts` gives its precision, recall and F1 (exact boundaries and type), and
:func:`tag_scores` reports them (and tag/line accuracy) as the same :class:`MetricResult`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from rnnkit.errors import RnnkitError, at
from rnnkit.io import read_lines, split_lines
from rnnkit.registry import suggest

#: Metric names in the order results are reported (sacrebleu's order: sorted by name).
METRICS = ("bleu", "chrf", "ter")
#: BLEU tokenizers sacreBLEU knows (some need extra packages or downloads).
TOKENIZERS = tuple(BLEU.TOKENIZERS)
#: Decimals of reported scores (the sacrebleu command line's default ``--width``).
WIDTH = 1


@dataclass(frozen=True)
class MetricResult:
    """One metric on a corpus or a sentence, as sacreBLEU reports it.

    ``name`` is sacreBLEU's ("BLEU", "chrF2", "TER"); ``score`` is unrounded; ``text`` is the line
    ``sacrebleu -f text`` prints and ``record`` the object ``sacrebleu -f json`` prints.
    """

    name: str
    score: float
    signature: str
    text: str
    record: dict[str, Any]


def parse_metrics(spec: str | Iterable[str]) -> list[str]:
    """``"bleu,chrf,ter"`` (or a list of names) as distinct metric names in reporting order."""
    return _parse(spec, METRICS)


def check_lengths(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    sys_name: str = "hypotheses",
    ref_names: Sequence[str] | None = None,
) -> None:
    """Raise a one-line error unless every reference stream has one line per hypothesis."""
    if not refs:
        raise RnnkitError("no reference given")
    names = ref_names or [f"reference {i + 1}" for i in range(len(refs))]
    for name, ref in zip(names, refs, strict=True):
        if len(ref) != len(hyps):
            raise RnnkitError(
                f"line counts differ: {sys_name} has {len(hyps)} lines, {name} has {len(ref)}"
            )
    if not hyps:
        raise RnnkitError(f"{sys_name}: no lines to score")


def build_metric(
    name: str, tokenize: str = "13a", lowercase: bool = False, sentence_level: bool = False
) -> Metric:
    """A sacreBLEU metric object configured as the sacrebleu command line would configure it."""
    if tokenize not in TOKENIZERS:
        raise RnnkitError(
            f"unknown tokenizer {tokenize!r} (choose from {', '.join(TOKENIZERS)})"
            f"{suggest(tokenize, list(TOKENIZERS))}"
        )
    try:
        if name == "bleu":
            return BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=sentence_level)
        if name == "chrf":
            return CHRF()
        if name == "ter":
            return TER()
    except ImportError as e:  # ja-mecab, ko-mecab, ... need optional packages
        raise RnnkitError(f"tokenizer {tokenize!r} needs an extra package: {e}") from None
    raise RnnkitError(f"unknown metric {name!r} (choose from {', '.join(METRICS)})")


def _result(metric: Metric, score: Any) -> MetricResult:
    """Wrap a sacreBLEU score with the text and JSON forms its command line prints."""
    sig = metric.get_signature().format()
    return MetricResult(
        name=score.name,
        score=float(score.score),
        signature=sig,
        text=score.format(WIDTH, signature=sig),
        record=json.loads(score.format(WIDTH, signature=sig, is_json=True)),
    )


def corpus_scores(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    metrics: str | Iterable[str] = ("bleu",),
    tokenize: str = "13a",
    lowercase: bool = False,
) -> list[MetricResult]:
    """Corpus-level scores of ``hyps`` (N lines) against reference streams ``refs`` (R x N)."""
    check_lengths(hyps, refs)
    results = []
    for name in parse_metrics(metrics):
        metric = build_metric(name, tokenize, lowercase)
        results.append(_result(metric, metric.corpus_score(list(hyps), [list(r) for r in refs])))
    return results


def sentence_scores(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    metrics: str | Iterable[str] = ("bleu",),
    tokenize: str = "13a",
    lowercase: bool = False,
) -> list[list[MetricResult]]:
    """Per-line scores: for each of the N hypotheses, one result per metric in reporting order."""
    check_lengths(hyps, refs)
    built = [build_metric(n, tokenize, lowercase, True) for n in parse_metrics(metrics)]
    return [
        [_result(m, m.sentence_score(hyp, list(line_refs))) for m in built]
        for hyp, *line_refs in zip(hyps, *refs, strict=True)
    ]


def format_text(results: Sequence[MetricResult]) -> list[str]:
    """Corpus results as the sacrebleu command line prints them: one line each, aligned on `=`."""
    lines = [r.text for r in results]
    cuts = [line.index(" = ") for line in lines]  # the name|signature part is right-aligned
    width = max(cuts, default=0)
    return [f"{line[:cut]:>{width}}{line[cut:]}" for line, cut in zip(lines, cuts, strict=True)]


def format_json(results: Sequence[MetricResult]) -> str:
    """Corpus results as a JSON list of sacreBLEU's records, laid out as ``sacrebleu`` does."""
    body = ",\n".join(json.dumps(r.record, indent=1, ensure_ascii=False) for r in results)
    return f"[\n{body}\n]"


def read_segments(path: str | os.PathLike, errors: str = "strict") -> list[str]:
    """Lines of ``path`` as the sacrebleu command line reads them (trailing whitespace dropped)."""
    return [text.rstrip() for _, text in read_lines(path, errors=errors)]


def split_segments(data: bytes, name: str = "<stdin>", errors: str = "strict") -> list[str]:
    """Like :func:`read_segments` for bytes already read (stdin); errors name ``name:line``."""
    return [line.rstrip() for line in split_lines(data, name, errors)]


# --- tagging: CoNLL span F1 and accuracies --------------------------------------------------

#: Tagging metrics in reporting order: span F1 (with P and R), token accuracy, line accuracy.
TAG_METRICS = ("f1", "acc", "label_acc")


def bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The labelled spans of a BIO tag sequence as ``(start, end, type)``, ``end`` exclusive.

    conlleval's rules: ``B-X`` starts a span; ``I-X`` continues a span of type X and otherwise
    (after ``O``, another type, or at the start) starts one; a span ends before ``O``, ``B-*``,
    ``I-`` of another type, or at the end. ``X`` is everything after the first ``-``. A tag that
    is neither ``O`` nor ``B-X``/``I-X`` (``<unk>``, ``B-``) is outside every span.
    """
    spans = []
    start, kind = 0, None  # the open span, if kind is not None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, t = tag.partition("-")
        if prefix not in ("B", "I") or not t:
            prefix, t = "O", ""
        begins = prefix == "B" or (prefix == "I" and t != kind)
        if kind is not None and (prefix == "O" or begins):
            spans.append((start, i, kind))
            kind = None
        if begins:
            start, kind = i, t
    return spans


@dataclass(frozen=True)
class SpanCounts:
    """Gold, predicted (found) and correct spans of a corpus; scores in percent (conlleval)."""

    gold: int
    found: int
    correct: int

    @property
    def precision(self) -> float:
        return 100 * self.correct / self.found if self.found else 0.0

    @property
    def recall(self) -> float:
        return 100 * self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _check_aligned(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    names: tuple[str, str] = ("reference", "prediction"),
) -> None:
    """Raise unless every predicted sentence has as many tags as its reference."""
    if len(gold) != len(pred):
        raise RnnkitError(f"{names[1]} has {len(pred)} sentences, {names[0]} has {len(gold)}")
    for n, (g, p) in enumerate(zip(gold, pred, strict=True), 1):
        if len(g) != len(p):
            raise RnnkitError(f"{at(names[1], n)}: {len(p)} tags, {at(names[0], n)} has {len(g)}")


def span_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> SpanCounts:
    """CoNLL span counts of ``pred`` against ``gold`` (one tag sequence per sentence): a span is
    correct only with the same start, end and type."""
    _check_aligned(gold, pred)
    n_gold = n_found = n_correct = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(bio_spans(g)), set(bio_spans(p))
        n_gold, n_found, n_correct = n_gold + len(gs), n_found + len(ps), n_correct + len(gs & ps)
    return SpanCounts(n_gold, n_found, n_correct)


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``total`` items; ``score`` in percent (0 when there is nothing)."""

    correct: int
    total: int

    @property
    def score(self) -> float:
        return 100 * self.correct / self.total if self.total else 0.0


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Accuracy:
    """Tags equal to the reference, position by position, over all sentences."""
    _check_aligned(gold, pred)
    pairs = [(a, b) for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True)]
    return Accuracy(sum(a == b for a, b in pairs), len(pairs))


def label_accuracy(gold: Sequence[str], pred: Sequence[str]) -> Accuracy:
    """Whole lines (one label each; surrounding whitespace ignored) equal to the reference."""
    pairs = zip(gold, pred, strict=True)
    return Accuracy(sum(g.strip() == p.strip() for g, p in pairs), len(gold))


def metric_family(spec: str | Iterable[str]) -> str:
    """``"text"`` for sacreBLEU metrics, ``"tags"`` for tagging ones; a mix is an error."""
    names = {n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec)}
    names.discard("")
    text, tags = names & set(METRICS), names & set(TAG_METRICS)
    if text and tags:
        raise RnnkitError(
            f"--metric mixes text metrics ({', '.join(sorted(text))}) and tagging metrics "
            f"({', '.join(sorted(tags))}): score them in two runs"
        )
    if tags and not names - tags:
        return "tags"
    _parse(names - tags, METRICS + TAG_METRICS)  # unknown names, listed with every choice
    return "text"


def tag_scores(
    hyps: Sequence[str],
    refs: Sequence[str],
    metrics: str | Iterable[str] = ("f1",),
    sys_name: str = "hypotheses",
    ref_name: str = "reference",
) -> list[MetricResult]:
    """Tagging metrics of system lines against reference lines, in :data:`TAG_METRICS` order.

    ``f1`` (CoNLL spans, with precision and recall) and ``acc`` (per tag) read whitespace-
    separated tags and need as many on each line as the reference; ``label_acc`` compares
    whole lines (one label a line, e.g. intents).
    """
    check_lengths(hyps, [refs], sys_name, [ref_name])
    wanted = _parse(metrics, TAG_METRICS)
    gold, pred = [r.split() for r in refs], [h.split() for h in hyps]
    if "f1" in wanted or "acc" in wanted:
        _check_aligned(gold, pred, (ref_name, sys_name))
    results = []
    if "f1" in wanted:
        c = span_counts(gold, pred)
        text = (f"F1 = {c.f1:.2f} (P {c.precision:.2f}, R {c.recall:.2f}; {c.gold} gold spans, "
                f"{c.found} found, {c.correct} correct)")  # fmt: skip
        detail = {"precision": round(c.precision, 2), "recall": round(c.recall, 2),
                  "gold": c.gold, "found": c.found, "correct": c.correct}  # fmt: skip
        results.append(_tag_result("F1", c.f1, text, detail))
    if "acc" in wanted:
        results.append(_accuracy_result("Acc", token_accuracy(gold, pred), "tags"))
    if "label_acc" in wanted:
        results.append(_accuracy_result("LabelAcc", label_accuracy(refs, hyps), "lines"))
    return results


def _accuracy_result(name: str, a: Accuracy, unit: str) -> MetricResult:
    text = f"{name} = {a.score:.2f} ({a.correct}/{a.total} {unit})"
    return _tag_result(name, a.score, text, {"correct": a.correct, "total": a.total})


def _tag_result(name: str, score: float, text: str, detail: dict[str, Any]) -> MetricResult:
    record = {"name": name, "score": round(score, 2), **detail}
    return MetricResult(name, score, "conlleval-bio", text, record)


def _parse(spec: str | Iterable[str], known: tuple[str, ...]) -> list[str]:
    """Distinct metric names of ``spec`` among ``known``, in ``known``'s order; unknown or no
    names raise with the valid ones."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise RnnkitError(
            f"unknown metric {unknown[0]!r} (choose from {', '.join(known)})"
            f"{suggest(unknown[0], list(known))}"
        )
    if not wanted:
        raise RnnkitError(f"no metric given (choose from {', '.join(known)})")
    return [m for m in known if m in wanted]
