"""``rnnkit generate``: decode a binarized split or raw lines (a file or stdin) with a model.

What is printed is the checkpoint's task's business (:mod:`rnnkit.tasks.inference`): this
module parses options, reads raw input (:mod:`rnnkit_cli.rawlines`) and hands a typed request
to the model's ``generate_split`` or ``generate_lines``. Two modes:

- ``rnnkit generate DATA_DIR --path CKPT --gen-subset test``: per sentence of the split (for
  translation fairseq's ``S-/T-/H-/D-/P-`` and ``A-`` lines) and a final scores line;
- ``rnnkit generate --path CKPT --input FILE|-``: exactly one line per input line, in order,
  each ``--buffer-size`` batch as soon as it is done (``--buffer-size 1``: every line is
  answered before the next one is read).

The search options are generated from :class:`~rnnkit.generation.search.SearchConfig`'s fields
(their help is the fields' metadata), as ``train``'s are from ``TrainConfig``. No ``from
__future__ import annotations`` here: the generated signature must hold real ``Annotated``
objects for typer to read. Results go to stdout (or ``--output FILE``, written atomically);
logs and warnings to stderr.
"""

import enum
import inspect
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from rnnkit.config import fields_of
from rnnkit.errors import RnnkitError
from rnnkit.generation.search import SearchConfig
from rnnkit.hub import load
from rnnkit.reporting import get_reporter
from rnnkit.tasks.inference import GenerateOptions, SplitRequest
from rnnkit.training.precision import Precision
from rnnkit_cli.common import UserDirOption, setup_plugins
from rnnkit_cli.paths import checkpoint_paths, paths_option
from rnnkit_cli.rawlines import lines_request, read_batches, sink

app = typer.Typer()
SEARCH, IO_PANEL, OUT = "Search (translation)", "Input", "Output"


class Amp(str, enum.Enum):
    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"


class Quantize(str, enum.Enum):
    none = "none"
    int8 = "int8"


class OutputFormat(str, enum.Enum):
    plain = "plain"
    jsonl = "jsonl"


def _opt(help: str, panel: str = SEARCH, *names: str) -> Any:  # noqa: A002
    return typer.Option(*names, help=help, rich_help_panel=panel)


def search_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per command-line field of SearchConfig, help from its metadata."""
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=f.default,
            annotation=Annotated[f.type, _opt(f.metadata["help"])],
        )  # fmt: skip
        for name, f in fields_of(SearchConfig).items()
        if f.metadata.get("cli", True)
    ]


def generate(
    data: Annotated[
        Path | None, typer.Argument(help="Binarized data directory (omit with --input).")
    ] = None,
    path: Annotated[
        list[str] | None,
        paths_option(
            "Checkpoint to decode with (default checkpoint_best.pt); an ensemble as "
            "a.pt:b.pt[:c.pt] (or --path repeated): the models' probabilities are averaged."
        ),
    ] = None,
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
            "Raw input: lines read before their answers are written (default 64; 1 when stdin "
            "is a terminal); a buffer is decoded in --batch-size groups of similar length.",
            IO_PANEL,
        ),  # fmt: skip
    ] = None,
    batch_size: Annotated[
        int,
        _opt(
            "Sentences decoded together (binarized data, and each raw --buffer-size buffer; "
            "beam × this many rows per step bound decoding memory).",
            IO_PANEL,
        ),
    ] = 64,
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
    print_scores: Annotated[
        bool,
        _opt(
            "Raw input: print each hypothesis's score after a tab (HYP<TAB>SCORE groups, best "
            "first, instead of ' ||| '); jsonl: add positional_scores. Scores are log-probs in "
            "nats, normalized as H- lines (sum / len^lenpen).",
            OUT,
        ),
    ] = False,
    output_format: Annotated[
        OutputFormat,
        _opt(
            "Raw input: plain (the n-best joined by ' ||| ', or HYP<TAB>SCORE groups with "
            "--print-scores) or jsonl (per line {line, source, nbest: [{hypothesis, score, "
            "tokens, ...}]}).",
            OUT,
        ),
    ] = OutputFormat.plain,
    score_reference: Annotated[
        bool,
        _opt(
            "Binarized data: score the references instead of searching (fairseq's "
            "--score-reference: H-/P- lines of the reference, then its loss and ppl).",
            OUT,
        ),
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
    quantize: Annotated[
        Quantize, typer.Option(help="Decode with int8 weights (dynamic quantization, CPU).")
    ] = Quantize.none,
    user_dir: UserDirOption = None,
    **search: Any,
) -> None:
    """Translate, tag or classify a binarized split or raw lines (one output line per line).

    Translation: per sentence of DATA fairseq's S-/T-/H-/D-/P- lines and a final sacreBLEU line;
    per raw line its translation (--nbest N: the N best joined by ' ||| '; with --print-scores
    tab-separated HYP<TAB>SCORE groups; --output-format jsonl: a JSON object per line). With
    --score-reference the split's references are scored, not searched. Scores are
    natural-log probabilities (nats; fairseq prints base 2) in every output.

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
    options = GenerateOptions(
        search=SearchConfig(**search),
        quiet=quiet,
        print_label=print_label,
        replace_unk=replace_unk,
        print_alignment=print_alignment,
        plot_attention=plot_attention,
        post_process=post_process,
        score_reference=score_reference,
        print_scores=print_scores,
        output_format=output_format.value,
    )
    model = load(checkpoint_paths(path, "checkpoint_best.pt"), device, quantize=quantize.value)
    precision = Precision(amp.value, model.device)
    if precision.dtype is not None:
        get_reporter().info(f"decoding under {amp.value} autocast on {model.device.type}")
    with precision.autocast(), sink(output) as out:
        if data is not None:
            split = SplitRequest(data, gen_subset, batch_size, max_tokens)
            model.generate_split(split, options, out)
        else:
            assert input is not None
            lines = lines_request(input, max_source_positions, skip_invalid_size_inputs, batch_size)
            model.generate_lines(read_batches(input, buffer_size), lines, options, out)


_parameters = list(inspect.signature(generate).parameters.values())
_at = next(i for i, p in enumerate(_parameters) if p.name == "replace_unk")  # after Input
generate.__signature__ = inspect.signature(
    generate
).replace(  # type: ignore[attr-defined]
    parameters=_parameters[:_at] + search_parameters() + _parameters[_at:-1]
)
app.command("generate")(generate)
