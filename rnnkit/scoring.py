"""Text metrics: sacreBLEU's BLEU, chrF and TER of system output against references.

Thin wrappers over sacreBLEU's Python API whose results carry the exact text line and JSON record
the ``sacrebleu`` command line prints, signature included, so ``rnnkit score --sys`` and
``sacrebleu`` agree to the digit. Metrics are configured as that command line configures them by
default: ``tokenize`` and ``lowercase`` are BLEU's options (chrF stays case-sensitive and TER
case-insensitive, as there), sentence-level BLEU uses effective order, and lines are read the way
it reads them (split on ``\\n``, trailing whitespace dropped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from rnnkit.errors import RnnkitError
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
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - set(METRICS))
    if unknown:
        name = unknown[0]
        choices = ", ".join(METRICS)
        raise RnnkitError(
            f"unknown metric {name!r} (choose from {choices}){suggest(name, list(METRICS))}"
        )
    if not wanted:
        raise RnnkitError(f"no metric given (choose from {', '.join(METRICS)})")
    return [m for m in METRICS if m in wanted]


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
