""":class:`Translator`: what :func:`rnnkit.load` returns for a translation model.

``translate`` turns raw lines into detokenized translations. For ``rnnkit generate`` it prints a
binarized split as fairseq does (``S-/T-/H-/D-/P-`` and ``A-`` lines per sentence, then a
sacreBLEU line) and raw lines one output line each (n-best joined by `` ||| ``, an alignment
after a tab; with ``--print-scores`` ``hypothesis<TAB>score`` groups; or one JSON object per line),
optionally plotting each sentence's attention. ``score`` force-scores given translations (the
references) through the decoder interface (:mod:`rnnkit.generation.forced`), for ``rnnkit score
--reference`` and ``rnnkit generate --score-reference``. Every score is a natural-log probability
(nats; fairseq prints base 2), and the log says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.generation.ensemble import DecoderEnsemble
from rnnkit.generation.search import Hypothesis, SearchConfig
from rnnkit.io import check_readable
from rnnkit.reporting import get_reporter
from rnnkit.tasks.base import Batching
from rnnkit.tasks.inference.base import Pretrained
from rnnkit.tasks.inference.requests import (
    GenerateOptions,
    LineBatches,
    LinesRequest,
    PairBatches,
    SplitRequest,
)
from rnnkit.tasks.lines import LineLimit, token_batches

UNITS = "scores are natural-log probabilities (nats; fairseq prints base 2)"

if TYPE_CHECKING:  # the task module imports this one (its ``inference`` class)
    from rnnkit.tasks.translation import TranslateOptions, Translation


class Translator(Pretrained):
    """A trained translation model: ``translate``, ``score``; ``rnnkit generate`` for splits and
    lines."""

    ensemble_class = DecoderEnsemble

    def translate(
        self,
        lines: list[str],
        beam: int = 5,
        batch_size: int = 64,
        max_source_positions: int = 1024,
        **search: Any,
    ) -> list[str]:
        """Translate raw lines (the model's tokenizer in, detokenized out): one string each.

        ``search`` takes any :class:`~rnnkit.generation.search.SearchConfig` field
        (``lenpen``, ``max_len_b``, ``sampling``, ``top_k``…). An empty line gives ``""``.
        """
        from rnnkit.tasks.translation import TranslateOptions

        cfg = resolve(SearchConfig, {"beam": beam, **search}, source="search option")
        options = TranslateOptions(max_source_positions=max_source_positions)
        out: list[str] = []
        for start in range(0, len(lines), batch_size):
            chunk = list(lines[start : start + batch_size])
            for t in self.task.translate_lines(self.model, chunk, cfg, self.device, options):
                out.append(self.task.detokenize(t.tokens[0]) if t.tokens else "")
        return out

    def score(
        self,
        sources: list[str],
        references: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        token_scores: bool = False,
        source_name: str = "<input>",
        reference_name: str = "<reference>",
        first_line: int = 1,
    ) -> list[dict[str, Any] | None]:
        """Log-probability (nats) of each reference given its source line, through the same
        decoder steps a search takes: ``tokens`` (the reference's, ``</s>`` included),
        ``logprob``, ``ppl`` and with ``token_scores`` ``token_logprobs`` (one per token).

        A source or reference of more than ``max_positions`` tokens (``</s>`` included) is cut
        to its first ones (a cut reference is scored without ``</s>``), or the pair skipped
        (``None``) with ``skip_invalid``, a warning naming the line (``first_line`` numbers the
        first pair).
        """
        if len(sources) != len(references):
            raise RnnkitError(f"{len(sources)} sources but {len(references)} references")
        src_limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        ref_limit = replace(src_limit, source_name=reference_name)
        d = self.task.tgt_dict
        pairs = [
            (src_limit.fit(self.task.encode_source(s), n),
             ref_limit.fit(d.encode(self.task.tokenizer.encode(r), append_eos=True), n))
            for n, (s, r) in enumerate(zip(sources, references, strict=True))
        ]  # fmt: skip
        kept = [i for i, (s, r) in enumerate(pairs) if s is not None and r is not None]
        results: list[dict[str, Any] | None] = [None] * len(sources)
        sizes = [max(len(pairs[i][0] or ()), len(pairs[i][1] or ())) for i in kept]
        for chunk in token_batches(sizes, batch_size):
            rows = [pairs[kept[j]] for j in chunk]
            hypos = self.task.force_score(self.model, [s for s, _ in rows],
                                          [r for _, r in rows], self.device)  # fmt: skip
            for j, h in zip(chunk, hypos, strict=True):
                results[kept[j]] = _score_record(h.positional_scores.tolist(), token_scores)
        return results

    # --- the command line's hooks ---------------------------------------------------------
    def score_lines(self, batches: LineBatches, lines: LinesRequest, out: IO[str]) -> None:
        """``rnnkit score --input`` alone: a translation model scores line pairs."""
        raise RnnkitError(
            f"{self.path}: a translation model scores translations given their sources: "
            "add --reference FILE (rnnkit score --input SRC --reference TGT)"
        )

    def score_references(self, batches: PairBatches, lines: LinesRequest, out: IO[str]) -> None:
        """``rnnkit score --input SRC --reference TGT``: one JSON result per line pair (null:
        skipped as too long), printed after every batch."""
        get_reporter().info(UNITS)
        for batch in batches:
            results = self.score([s for _, s, _ in batch], [r for _, _, r in batch],
                                 lines.batch_size, lines.max_positions, lines.skip_invalid,
                                 token_scores=lines.token_scores, source_name=lines.source_name,
                                 reference_name=lines.reference_name,
                                 first_line=batch[0][0])  # fmt: skip
            out.writelines(json.dumps(r) + "\n" for r in results)
            out.flush()

    def generate_split(self, split: SplitRequest, options: GenerateOptions, out: IO[str]) -> None:
        """fairseq-style lines for every sentence of the split, then corpus sacreBLEU; with
        ``score_reference`` the references are the hypotheses (force-scored, no search), then
        their loss and perplexity."""
        from rnnkit.tasks import load_task

        show, edit = _prepared(options)
        langs = (self.task.src_lang, self.task.tgt_lang)  # the model's direction of the pair
        task = load_task(split.data, expect=self.task_name, langs=langs)
        if task.src_dict != self.task.src_dict or task.tgt_dict != self.task.tgt_dict:
            raise RnnkitError(
                f"{split.data}: its dictionaries differ from the model's ({self.arch})"
            )
        get_reporter().info(UNITS)
        hyps: dict[int, str] = {}
        refs: dict[int, str] = {}
        total = [0.0, 0]  # summed log-prob and tokens of the first hypotheses
        src, tgt = task.datasets(split.subset)
        batching = Batching(split.batch_size or 64, split.max_tokens)
        batches = task.generate_split(self.model, split.subset, batching, show.search,
                                      self.device, reference=show.score_reference)  # fmt: skip
        with get_reporter().progress(f"generate {split.subset}", total=len(src)) as bar:
            for ids, results in batches:
                for i, hypos in zip(ids, results, strict=True):
                    source = task.src_dict.decode(src[i].tolist())
                    ref_tokens = task.tgt_dict.decode(tgt[i].tolist())
                    refs[i] = task.detokenize(ref_tokens)
                    lines = [f"S-{i}\t{' '.join(source)}", f"T-{i}\t{' '.join(ref_tokens)}"]
                    hyps[i] = ""
                    for rank, h in enumerate(hypos):
                        tokens = task.hypothesis_tokens(h, source, edit)
                        detok = task.detokenize(tokens)
                        if rank == 0:
                            hyps[i] = detok
                            total = [total[0] + float(h.positional_scores.sum()),
                                     total[1] + h.positional_scores.numel()]  # fmt: skip
                            _plot(show, str(i), source, tokens, h)
                        lines += _hypothesis_lines(i, h, tokens, detok, show)
                    if not show.quiet:
                        out.write("\n".join(lines) + "\n")
                out.flush()
                bar.update(len(ids))
        out.write(_final_line(split.subset, show, hyps, refs, total) + "\n")

    def generate_lines(
        self, batches: LineBatches, lines: LinesRequest, options: GenerateOptions, out: IO[str]
    ) -> None:
        """One output line per input line, flushed after every batch."""
        show, edit = _prepared(options)
        base = replace(edit, source_name=lines.source_name,
                       max_source_positions=lines.max_positions,
                       skip_invalid=lines.skip_invalid)  # fmt: skip
        if show.score_reference:
            raise RnnkitError(
                "--score-reference scores a binarized DATA split's references; "
                "for raw lines: rnnkit score --input SRC --reference TGT"
            )
        if show.print_scores or show.output_format == "jsonl":
            get_reporter().info(UNITS)
        for batch in batches:
            results = self._translate_buffer(batch, show.search, base, lines.batch_size)
            for (n, text), t in zip(batch, results, strict=True):
                out.write(self._raw_line(t, show, n, text) + "\n")
            out.flush()

    def _translate_buffer(
        self,
        buffer: list[tuple[int, str]],
        search: SearchConfig,
        base: TranslateOptions,
        batch_size: int,
    ) -> list[Translation]:
        """A ``--buffer-size`` buffer of (line number, text) decoded in groups of lines of
        similar length, at most ``batch_size`` each (fairseq-interactive's ``--buffer-size`` /
        ``--batch-size``); results in buffer order.

        Why: one search over a buffer of 1,000 lines holds 1,000 × beam rows, and each step's
        (rows, V) log-probs (200 MB at beam 5 and V = 10k) a few times over; groups bound that,
        and sorting by length cuts the padding. The hypotheses are the ones a search of each
        group alone finds. A line longer than ``--max-source-positions`` goes alone, so its
        warning names it.
        """
        limit = base.max_source_positions
        sizes = [len(self.task.tokenizer.encode(text)) + 1 for _, text in buffer]  # </s> too
        fits = [i for i, size in enumerate(sizes) if size <= limit]
        groups = [[fits[j] for j in g] for g in token_batches([sizes[i] for i in fits], batch_size)]
        groups += [[i] for i, size in enumerate(sizes) if size > limit]
        results: list[Translation | None] = [None] * len(buffer)
        for group in groups:
            opts = replace(base, first_line=buffer[group[0]][0])
            texts = [buffer[i][1] for i in group]
            found = self.task.translate_lines(self.model, texts, search, self.device, opts)
            for i, t in zip(group, found, strict=True):
                results[i] = t
        return [t for t in results if t is not None]

    def _raw_line(self, t: Translation, show: GenerateOptions, n: int, text: str) -> str:
        """The output line of input line ``n`` (``text``): n-best joined by ' ||| ' (an
        alignment after a tab), ``hypothesis<TAB>score`` groups with ``print_scores``, or a
        JSON object with ``output_format`` jsonl."""
        nbest: list[dict[str, Any]] = []
        for rank, (h, tokens) in enumerate(zip(t.hypotheses, t.tokens, strict=True)):
            out = self.task.detokenize(tokens) if show.post_process else " ".join(tokens)
            entry: dict[str, Any] = {"hypothesis": out, "score": h.score, "tokens": tokens}
            if show.print_scores:
                entry["positional_scores"] = h.positional_scores.tolist()
            if show.print_alignment and h.alignment is not None:
                entry["alignment"] = _alignment(h)
            if rank == 0:
                _plot(show, f"line{n}", t.source, tokens, h)
            nbest.append(entry)
        if show.output_format == "jsonl":
            return json.dumps({"line": n, "source": text, "nbest": nbest}, ensure_ascii=False)
        groups = []
        for e in nbest:
            fields = (
                [e["hypothesis"], f"{e['score']:.4f}"] if show.print_scores else [e["hypothesis"]]
            )
            groups.append("\t".join(fields + ([e["alignment"]] if "alignment" in e else [])))
        return ("\t" if show.print_scores else " ||| ").join(groups)


def _prepared(options: GenerateOptions) -> tuple[GenerateOptions, TranslateOptions]:
    """``options`` (their search keeping attention only for ``--print-alignment``,
    ``--replace-unk`` or ``--plot-attention``) and the translation options they imply (the
    ``--replace-unk`` dictionary read), after making the ``--plot-attention`` folder."""
    from rnnkit.tasks.translation import TranslateOptions

    dict_file = options.replace_unk
    align_dict = read_align_dict(dict_file) if dict_file else None
    edit = TranslateOptions(replace_unk=dict_file is not None, align_dict=align_dict)
    if options.plot_attention is not None:
        options.plot_attention.mkdir(parents=True, exist_ok=True)
    # Search keeps every hypothesis's attention history only for what reads it.
    needed = options.print_alignment or dict_file is not None or options.plot_attention is not None
    search = replace(options.search, attention=options.search.attention and needed)
    return replace(options, search=search), edit


def read_align_dict(path: str) -> dict[str, str] | None:
    """``--replace-unk DICT``: one ``source target`` pair per line ("" means no dictionary)."""
    if not path:
        return None
    pairs = {}
    with open(check_readable(path), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) < 2:
                raise RnnkitError(f"{path}:{n}: expected 'source target', got {line.strip()!r}")
            pairs[fields[0]] = fields[1]
    return pairs


def _score_record(positional: list[float], token_scores: bool) -> dict[str, Any]:
    """``score``'s result for one line: tokens, log-prob (nats), perplexity (per-token
    log-probs with ``token_scores``), the fields of a language model's line scores."""
    logprob = sum(positional)
    record: dict[str, Any] = {
        "tokens": len(positional),
        "logprob": logprob,
        "ppl": math.exp(-logprob / len(positional)),
    }
    if token_scores:
        record["token_logprobs"] = positional
    return record


def _final_line(
    subset: str,
    show: GenerateOptions,
    hyps: dict[int, str],
    refs: dict[int, str],
    total: list[float],
) -> str:
    """The last line of ``generate DATA``: sacreBLEU of the hypotheses, or with
    ``--score-reference`` the references' loss (nats/token) and perplexity."""
    if show.score_reference:
        loss = -total[0] / max(total[1], 1)
        return (
            f"Score {subset} references: {len(hyps)} sentences | {int(total[1])} tokens | "
            f"loss {loss:.4f} nats/token | ppl {math.exp(min(loss, 100.0)):.2f}"
        )
    from rnnkit.scoring import corpus_scores

    order = sorted(hyps)
    bleu = corpus_scores([hyps[i] for i in order], [[refs[i] for i in order]], "bleu")[0]
    return f"Generate {subset} with beam={show.search.beam}: {bleu.text}"


def _alignment(hypo: Hypothesis) -> str:
    assert hypo.alignment is not None
    return " ".join(f"{s}-{t}" for t, s in enumerate(hypo.alignment.tolist()))


def _plot(show: GenerateOptions, name: str, source: list[str], tokens: list[str],
          hypo: Hypothesis) -> None:  # fmt: skip
    if show.plot_attention is not None and hypo.attention is not None:
        from rnnkit.generation.plot import plot_attention

        plot_attention(hypo.attention, [*source, "</s>"], [*tokens, "</s>"],
                       Path(show.plot_attention) / f"{name}.png")  # fmt: skip


def _hypothesis_lines(i: int, h: Hypothesis, tokens: list[str], detok: str,
                      show: GenerateOptions) -> list[str]:  # fmt: skip
    """fairseq's H- (tokens), D- (detokenized), P- (per-token log-probs, nats) and A- lines."""
    positional = " ".join(f"{p:.4f}" for p in h.positional_scores.tolist())
    lines = [
        f"H-{i}\t{h.score:.4f}\t{' '.join(tokens)}",
        f"D-{i}\t{h.score:.4f}\t{detok}",
        f"P-{i}\t{positional}",
    ]
    if show.print_alignment and h.alignment is not None:
        lines.append(f"A-{i}\t{_alignment(h)}")
    return lines
