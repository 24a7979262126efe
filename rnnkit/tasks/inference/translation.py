""":class:`Translator`: what :func:`rnnkit.load` returns for a translation model.

``translate`` turns raw lines into detokenized translations. For ``rnnkit generate`` it prints a
binarized split as fairseq does (``S-/T-/H-/D-/P-`` and ``A-`` lines per sentence, then a
sacreBLEU line) and raw lines one output line each (n-best joined by `` ||| ``, an alignment
after a tab), optionally plotting each sentence's attention.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.generation.search import Hypothesis, SearchConfig
from rnnkit.io import check_readable
from rnnkit.reporting import get_reporter
from rnnkit.tasks.base import Batching
from rnnkit.tasks.inference.base import Pretrained
from rnnkit.tasks.inference.requests import (
    GenerateOptions,
    LineBatches,
    LinesRequest,
    SplitRequest,
)

if TYPE_CHECKING:  # the task module imports this one (its ``inference`` class)
    from rnnkit.tasks.translation import TranslateOptions, Translation


class Translator(Pretrained):
    """A trained translation model: ``translate``; ``rnnkit generate`` for splits and lines."""

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

    # --- the command line's hooks ---------------------------------------------------------
    def generate_split(self, split: SplitRequest, options: GenerateOptions, out: IO[str]) -> None:
        """fairseq-style lines for every sentence of the split, then corpus sacreBLEU."""
        from rnnkit.scoring import corpus_scores
        from rnnkit.tasks import load_task

        show, edit = _prepared(options)
        search = show.search
        task = load_task(split.data, expect=self.task_name)
        if task.src_dict != self.task.src_dict or task.tgt_dict != self.task.tgt_dict:
            raise RnnkitError(
                f"{split.data}: its dictionaries differ from the model's ({self.arch})"
            )
        hyps: dict[int, str] = {}
        refs: dict[int, str] = {}
        src, tgt = task.datasets(split.subset)
        batching = Batching(split.batch_size or 64, split.max_tokens)
        batches = task.generate_split(self.model, split.subset, batching, search, self.device)
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
                            _plot(show, str(i), source, tokens, h)
                        lines += _hypothesis_lines(i, h, tokens, detok, show)
                    if not show.quiet:
                        out.write("\n".join(lines) + "\n")
                out.flush()
                bar.update(len(ids))
        order = sorted(hyps)
        bleu = corpus_scores([hyps[i] for i in order], [[refs[i] for i in order]], "bleu")[0]
        out.write(f"Generate {split.subset} with beam={search.beam}: {bleu.text}\n")

    def generate_lines(
        self, batches: LineBatches, lines: LinesRequest, options: GenerateOptions, out: IO[str]
    ) -> None:
        """One output line per input line, flushed after every batch."""
        show, edit = _prepared(options)
        base = replace(edit, source_name=lines.source_name,
                       max_source_positions=lines.max_positions,
                       skip_invalid=lines.skip_invalid)  # fmt: skip
        for batch in batches:
            opts = replace(base, first_line=batch[0][0])
            results = self.task.translate_lines(self.model, [t for _, t in batch], show.search,
                                                self.device, opts)  # fmt: skip
            for (n, _), t in zip(batch, results, strict=True):
                out.write(self._raw_line(t, show, n) + "\n")
            out.flush()

    def _raw_line(self, t: Translation, show: GenerateOptions, n: int) -> str:
        """The output line of one input line: n-best joined by ' ||| ', alignment after a tab."""
        texts = []
        for rank, (h, tokens) in enumerate(zip(t.hypotheses, t.tokens, strict=True)):
            text = self.task.detokenize(tokens) if show.post_process else " ".join(tokens)
            if show.print_alignment and h.alignment is not None:
                text += "\t" + _alignment(h)
            if rank == 0:
                _plot(show, f"line{n}", t.source, tokens, h)
            texts.append(text)
        return " ||| ".join(texts)


def _prepared(options: GenerateOptions) -> tuple[GenerateOptions, TranslateOptions]:
    """``options`` and the translation options they imply (the ``--replace-unk`` dictionary
    read), after making the ``--plot-attention`` folder."""
    from rnnkit.tasks.translation import TranslateOptions

    dict_file = options.replace_unk
    align_dict = read_align_dict(dict_file) if dict_file else None
    edit = TranslateOptions(replace_unk=dict_file is not None, align_dict=align_dict)
    if options.plot_attention is not None:
        options.plot_attention.mkdir(parents=True, exist_ok=True)
    return options, edit


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
