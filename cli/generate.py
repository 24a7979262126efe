"""``rnnkit generate``: decode a binarized split or raw lines (a file or stdin) with a model.

Translation checkpoints are decoded here; tagging and classification checkpoints are handed to
:mod:`rnnkit_cli.generate_tags` (tags and labels, same two modes). For translation, two modes,
one library underneath (:class:`rnnkit.tasks.translation.TranslationTask`):

- ``rnnkit generate DATA_DIR --path CKPT --gen-subset test`` prints fairseq's ``S-/T-/H-/D-/P-``
  (and ``A-``) lines per sentence and a final sacreBLEU line;
- ``rnnkit generate --path CKPT --input FILE|-`` prints exactly one line per input line, in
  order, each ``--buffer-size`` batch as soon as it is done (``--buffer-size 1``: every line is
  answered before the next one is read).

Results go to stdout (or ``--output FILE``, written atomically); logs and warnings to stderr.
"""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Annotated, Any

import torch
import typer

from rnnkit.errors import RnnkitError
from rnnkit.generation.search import SearchConfig
from rnnkit.hub import Pretrained, load
from rnnkit.io import atomic_write, check_readable, stream_lines
from rnnkit.reporting import get_reporter
from rnnkit.tasks import load_task
from rnnkit.tasks.translation import TranslateOptions, Translation, TranslationTask
from rnnkit.training.precision import Precision
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()
SEARCH, IO_PANEL, OUT = "Search (translation)", "Input", "Output"


class Amp(str, enum.Enum):
    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"


def _opt(help: str, panel: str = SEARCH, *names: str) -> Any:  # noqa: A002
    return typer.Option(*names, help=help, rich_help_panel=panel)


@app.command("generate")
def generate(
    data: Annotated[
        Path | None, typer.Argument(help="Binarized data directory (omit with --input).")
    ] = None,
    path: Annotated[Path, typer.Option("--path", help="Checkpoint to decode with.")] = Path(
        "checkpoint_best.pt"
    ),
    gen_subset: Annotated[str, _opt("Split of DATA to decode.", IO_PANEL)] = "test",
    input: Annotated[  # noqa: A002
        str | None,
        _opt(
            "Raw text, one sentence per line; - is stdin.", IO_PANEL, "--input", "-i"
        ),  # fmt: skip
    ] = None,
    buffer_size: Annotated[
        int | None,
        _opt(
            "Raw input: lines decoded together (default 64; 1 when stdin is a terminal).", IO_PANEL
        ),  # fmt: skip
    ] = None,
    batch_size: Annotated[int, _opt("Binarized data: sentences per batch.", IO_PANEL)] = 64,
    max_tokens: Annotated[
        int, _opt("Binarized data: source tokens per batch (0: off).", IO_PANEL)
    ] = 0,
    max_source_positions: Annotated[
        int,
        _opt(
            "Raw lines of more tokens are truncated (with a warning naming the line).",
            IO_PANEL,
            "--max-source-positions",
            "--max-positions",
        ),
    ] = 1024,
    skip_invalid_size_inputs: Annotated[
        bool, _opt("Skip over-long lines instead (an empty output line).", IO_PANEL)
    ] = False,
    beam: Annotated[int, _opt("Beam width; 1 is greedy.")] = 5,
    nbest: Annotated[int, _opt("Hypotheses to print per sentence.")] = 1,
    max_len_a: Annotated[float, _opt("Max output length a·src_len + b (tokens).")] = 0.0,
    max_len_b: Annotated[int, _opt("See --max-len-a.")] = 200,
    min_len: Annotated[int, _opt("Min output length (tokens, </s> excluded).")] = 1,
    lenpen: Annotated[float, _opt("Length penalty α: score = log P / len^α.")] = 1.0,
    unkpen: Annotated[float, _opt("Subtracted from <unk>'s log-prob.")] = 0.0,
    no_repeat_ngram_size: Annotated[int, _opt("Never repeat an n-gram of this size.")] = 0,
    sampling: Annotated[bool, _opt("Sample instead of beam search (--beam samples).")] = False,
    temperature: Annotated[float, _opt("Sampling temperature.")] = 1.0,
    top_k: Annotated[int, _opt("Sample among the k most likely (0: all).")] = 0,
    top_p: Annotated[float, _opt("Nucleus sampling mass (1: off).")] = 1.0,
    seed: Annotated[int | None, _opt("Sampling seed.")] = None,
    replace_unk: Annotated[
        str | None,
        _opt(
            "Replace <unk> by the aligned source word; optionally give a 'src tgt' DICT file "
            "(`--replace-unk` alone: copy).",
            OUT,
        ),  # fmt: skip
    ] = None,
    print_alignment: Annotated[
        bool, _opt("Print hard alignments (A- lines / a tab field).", OUT)
    ] = False,
    plot_attention: Annotated[
        Path | None, _opt("Write a PNG attention heatmap per sentence into this folder.", OUT)
    ] = None,
    post_process: Annotated[
        bool, _opt("Detokenize output with the model's tokenizer (raw mode; D- lines).", OUT)
    ] = True,
    quiet: Annotated[
        bool, _opt("Binarized data: print only the final BLEU (or F1/accuracy) line.", OUT)
    ] = False,
    print_label: Annotated[
        bool,
        _opt("Tagging, raw input: print LABEL, a tab, TAGS (a tagger with a label head).", OUT),
    ] = False,
    output: Annotated[
        Path | None, _opt("Write results here (atomically) instead of stdout.", OUT)
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    threads: Annotated[int, typer.Option(help="CPU threads for torch (0: default).")] = 0,
    amp: Annotated[
        Amp,
        typer.Option(
            help="Decode under autocast: bf16 (faster on CUDA and on CPUs with AVX-512-BF16 or "
            "AMX; slower elsewhere) or fp16 (CUDA). Hypotheses can differ slightly from fp32's."
        ),
    ] = Amp.none,
    user_dir: UserDirOption = None,
) -> None:
    """Translate, tag or classify a binarized split or raw lines (one output line per line).

    Translation: per sentence of DATA fairseq's S-/T-/H-/D-/P- lines and a final sacreBLEU line;
    per raw line its translation.

    Tagging: per raw line the predicted tags, space-separated, one per token of the model's
    tokenizer (with `--print-label`: LABEL, a tab, the tags). Classification: per raw line its
    label. A line without tokens gives an empty line. For DATA: S-i (tokens), T-i / H-i (gold /
    predicted tags), TL-i / HL-i (gold / predicted label, then its probability) and a final line
    with span F1, tag accuracy and label accuracy. Search options apply to translation only.

    Examples:
    `rnnkit generate data-bin/multi30k --path runs/m30k/checkpoint_best.pt --gen-subset test`;
    `cat test.en | rnnkit generate --path runs/m30k/checkpoint_best.pt -i - | sacrebleu ref.de`;
    `rnnkit generate runs/atis/data --path runs/atis/bilstm/checkpoint_best.pt --gen-subset valid`;
    `echo "flights to boston" | rnnkit generate --path runs/atis/bilstm/checkpoint_best.pt -i -`;
    `rnnkit generate --path atis.pt -i valid/seq.in --print-label > valid.label_tags`
    """
    setup_plugins(user_dir)
    if threads > 0:
        torch.set_num_threads(threads)
    if (data is None) == (input is None):
        raise RnnkitError("give a binarized DATA directory or --input FILE|- (one of the two)")
    search = SearchConfig(beam=beam, nbest=nbest, max_len_a=max_len_a, max_len_b=max_len_b,
                          min_len=min_len, lenpen=lenpen, unkpen=unkpen,
                          no_repeat_ngram_size=no_repeat_ngram_size, sampling=sampling,
                          temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # fmt: skip
    model = load(path, device)
    precision = Precision(amp.value, model.device)
    if precision.dtype is not None:
        get_reporter().info(f"decoding under {amp.value} autocast on {model.device.type}")
    with precision.autocast():
        if model.task_name in ("tagging", "classification"):
            limit = (max_source_positions, skip_invalid_size_inputs)
            generate_tags(model, data, gen_subset, input, buffer_size, batch_size, max_tokens,
                          print_label, quiet, output, limit)  # fmt: skip
            return
        if model.task_name != "translation":
            raise RnnkitError(
                f"{path}: a {model.task_name!r} checkpoint; rnnkit generate decodes translation, "
                "tagging and classification models (rnnkit sample generates from language models)"
            )
        options = TranslateOptions(
            max_source_positions=max_source_positions,
            skip_invalid=skip_invalid_size_inputs,
            replace_unk=replace_unk is not None,
            align_dict=read_align_dict(replace_unk) if replace_unk else None,
        )
        if plot_attention is not None:
            plot_attention.mkdir(parents=True, exist_ok=True)
        show = Show(print_alignment, plot_attention, post_process, quiet)
        with sink(output) as out:
            if data is not None:
                decode_split(
                    model, data, gen_subset, search, options, show, batch_size, max_tokens, out
                )
            else:
                assert input is not None
                decode_lines(
                    model, input, raw_buffer(input, buffer_size), search, options, show, out
                )


def raw_buffer(input: str, buffer_size: int | None) -> int:  # noqa: A002
    """Lines per batch in raw mode: ``--buffer-size``, else 1 on a terminal and 64 otherwise."""
    size = buffer_size or (1 if input == "-" and sys.stdin.isatty() else 64)
    if size < 1:
        raise RnnkitError("--buffer-size must be at least 1")
    return size


def generate_tags(
    model: Pretrained, data: Path | None, subset: str, input: str | None,  # noqa: A002
    buffer_size: int | None, batch_size: int, max_tokens: int, print_label: bool, quiet: bool,
    output: Path | None, limit: tuple[int, bool] = (1024, False),
) -> None:  # fmt: skip
    """Tags or labels of a tagging or classification model (:mod:`rnnkit_cli.generate_tags`);
    ``limit``: raw lines' ``--max-positions`` and ``--skip-invalid-size-inputs``."""
    from rnnkit_cli.generate_tags import label_lines, label_split

    with sink(output) as out:
        if data is not None:
            label_split(model, data, subset, batch_size, max_tokens, quiet, out)
        else:
            assert input is not None
            label_lines(model, input, raw_buffer(input, buffer_size), print_label, out, limit)


class Show:
    """What to print besides the hypotheses."""

    def __init__(self, alignment: bool, plots: Path | None, detok: bool, quiet: bool) -> None:
        self.alignment, self.plots, self.detok, self.quiet = alignment, plots, detok, quiet


@contextlib.contextmanager
def sink(output: Path | None) -> Iterator[IO[str]]:
    """stdout, or ``output`` written to a temporary file and renamed at the end."""
    if output is None:
        yield sys.stdout
        return
    with atomic_write(output) as f:
        yield f


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


def _alignment(hypo: Any) -> str:
    return " ".join(f"{s}-{t}" for t, s in enumerate(hypo.alignment.tolist()))


def _plot(show: Show, name: str, source: list[str], tokens: list[str], hypo: Any) -> None:
    if show.plots is not None and hypo.attention is not None:
        from rnnkit.generation.plot import plot_attention

        plot_attention(hypo.attention, [*source, "</s>"], [*tokens, "</s>"],
                       show.plots / f"{name}.png")  # fmt: skip


def decode_split(
    model: Pretrained, data: Path, subset: str, search: SearchConfig, options: TranslateOptions,
    show: Show, batch_size: int, max_tokens: int, out: IO[str],
) -> None:  # fmt: skip
    """fairseq-style lines for every sentence of ``subset``, then corpus sacreBLEU."""
    from rnnkit.scoring import corpus_scores

    task: TranslationTask = load_task(data, expect="translation")
    if task.src_dict != model.task.src_dict or task.tgt_dict != model.task.tgt_dict:
        raise RnnkitError(f"{data}: its dictionaries differ from the model's ({model.arch})")

    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    src, tgt = task.datasets(subset)
    batching = SimpleNamespace(batch_size=batch_size, max_tokens=max_tokens)
    batches = task.generate_split(model.model, subset, batching, search, model.device)
    with get_reporter().progress(f"generate {subset}", total=len(src)) as bar:
        for ids, results in batches:
            for i, hypos in zip(ids, results, strict=True):
                source = task.src_dict.decode(src[i].tolist())
                ref_tokens = task.tgt_dict.decode(tgt[i].tolist())
                refs[i] = task.detokenize(ref_tokens)
                lines = [f"S-{i}\t{' '.join(source)}", f"T-{i}\t{' '.join(ref_tokens)}"]
                hyps[i] = ""
                for rank, h in enumerate(hypos):
                    tokens = task.hypothesis_tokens(h, source, options)
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
    out.write(f"Generate {subset} with beam={search.beam}: {bleu.text}\n")


def _hypothesis_lines(i: int, h: Any, tokens: list[str], detok: str, show: Show) -> list[str]:
    """fairseq's H- (tokens), D- (detokenized), P- (per-token log-probs, nats) and A- lines."""
    positional = " ".join(f"{p:.4f}" for p in h.positional_scores.tolist())
    lines = [
        f"H-{i}\t{h.score:.4f}\t{' '.join(tokens)}",
        f"D-{i}\t{h.score:.4f}\t{detok}",
        f"P-{i}\t{positional}",
    ]
    if show.alignment and h.alignment is not None:
        lines.append(f"A-{i}\t{_alignment(h)}")
    return lines


def read_raw(name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) from a file or stdin (``-``), one line at a time, invalid UTF-8
    replaced with a warning naming the line."""
    if name == "-":
        yield from stream_lines(sys.stdin.buffer, "<stdin>", errors="warn")
        return
    with open(check_readable(name), "rb") as f:
        yield from stream_lines(f, name, errors="warn")


def read_batches(name: str, buffer_size: int) -> Iterator[list[tuple[int, str]]]:
    """:func:`read_raw`'s lines in lists of ``buffer_size`` (the last may be shorter), each
    handed over as soon as it is full, so output can follow every batch."""
    buffer: list[tuple[int, str]] = []
    for line in read_raw(name):
        buffer.append(line)
        if len(buffer) >= buffer_size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def decode_lines(
    model: Pretrained, name: str, buffer_size: int, search: SearchConfig,
    options: TranslateOptions, show: Show, out: IO[str],
) -> None:  # fmt: skip
    """One output line per input line, flushed after every ``buffer_size`` lines."""
    from dataclasses import replace

    where = "<stdin>" if name == "-" else name
    for batch in read_batches(name, buffer_size):
        opts = replace(options, source_name=where, first_line=batch[0][0])
        results = model.task.translate_lines(model.model, [t for _, t in batch], search,
                                             model.device, opts)  # fmt: skip
        for (n, _), t in zip(batch, results, strict=True):
            out.write(_raw_line(model.task, t, show, n) + "\n")
        out.flush()


def _raw_line(task: TranslationTask, t: Translation, show: Show, n: int) -> str:
    """The output line of one input line: n-best joined by ' ||| ', alignment after a tab."""
    texts = []
    for rank, (h, tokens) in enumerate(zip(t.hypotheses, t.tokens, strict=True)):
        text = task.detokenize(tokens) if show.detok else " ".join(tokens)
        if show.alignment and h.alignment is not None:
            text += "\t" + _alignment(h)
        if rank == 0:
            _plot(show, f"line{n}", t.source, tokens, h)
        texts.append(text)
    return " ||| ".join(texts)
