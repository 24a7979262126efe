"""``rnnkit score``: perplexity of a language model, or a system output against references.

With ``--path`` it scores a model on binarized data or raw lines (a tagger or classifier: span
F1, tag and label accuracy on binarized data, as validation reports them); with ``--sys`` it
scores a system output against ``--ref`` files through :mod:`rnnkit.scoring`: BLEU/chrF/TER
printed exactly as the ``sacrebleu`` command line prints them, or, for tag and label files, CoNLL
span F1 (``--metric f1``), tag accuracy (``acc``) and line accuracy (``label_acc``).
"""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from rnnkit import scoring
from rnnkit.errors import RnnkitError
from rnnkit_cli.common import ThreadsOption, UserDirOption, set_threads, setup_plugins
from rnnkit_cli.paths import PathsOption, checkpoint_paths

# No torch at module level (``score --sys/--ref`` must start fast): rnnkit.hub, the inference
# requests and the raw-line readers are imported in the branch that loads a model.

app = typer.Typer()
TEXT, RAW = "Text and tagging metrics", "Raw lines (--input)"


class Quantize(str, enum.Enum):
    none = "none"
    int8 = "int8"


@app.command("score")
def score(
    data: Annotated[
        Path | None, typer.Argument(help="Binarized data directory to evaluate on.")
    ] = None,
    path: PathsOption = None,
    subset: Annotated[
        str, typer.Option(help="Split of DATA to evaluate: valid, test, ...")
    ] = "valid",
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Raw text file (or - for stdin): one JSON result per line (null for a line "
            "skipped as too long): tokens, logprob (nats), ppl.",
            rich_help_panel=RAW,
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Translation: given outputs of the --input lines, line-aligned (or -); one "
            "JSON result per pair, the numbers of a forced decode (generate --score-reference).",
            metavar="FILE",
            rich_help_panel=RAW,
        ),
    ] = None,
    print_token_scores: Annotated[
        bool,
        typer.Option(
            "--print-token-scores",
            help="--input: add token_logprobs, the log-prob (nats) of every token, </s> last.",
            rich_help_panel=RAW,
        ),
    ] = False,
    buffer_size: Annotated[
        int | None,
        typer.Option(
            help="--input: lines scored together, printed as soon as scored (default 64; 1 when "
            "stdin is a terminal).",
            rich_help_panel=RAW,
        ),
    ] = None,
    max_positions: Annotated[
        int | None,
        typer.Option(
            help="--input: a line of more tokens (its end-of-line token included) is scored on "
            "its first ones, with a warning naming it (default 1024).",
            rich_help_panel=RAW,
        ),
    ] = None,
    skip_invalid_size_inputs: Annotated[
        bool,
        typer.Option(
            "--skip-invalid-size-inputs",
            help="--input: skip over-long lines instead (null results).",
            rich_help_panel=RAW,
        ),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Streams for perplexity, or sentences per batch for a tagger or classifier "
            "(default: the training batch size)."
        ),
    ] = None,
    bptt: Annotated[
        int | None, typer.Option(help="Window length (default: the training bptt).")
    ] = None,
    sys_file: Annotated[
        str | None,
        typer.Option(
            "--sys",
            help="System output to score (or - for stdin), one segment a line; needs --ref.",
            metavar="FILE",
            rich_help_panel=TEXT,
        ),
    ] = None,
    refs: Annotated[
        list[Path] | None,
        typer.Option(
            "--ref",
            help="Reference file, line-aligned with --sys; repeat for several references.",
            metavar="FILE",
            rich_help_panel=TEXT,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated metrics: bleu, chrf, ter (default: bleu; reported in "
            "sacrebleu's order), or for tag/label files f1 (CoNLL BIO spans), acc (per tag), "
            "label_acc (per line).",
            rich_help_panel=TEXT,
        ),
    ] = None,
    sentence_level: Annotated[
        bool,
        typer.Option(
            "--sentence-level", help="One result per line of --sys.", rich_help_panel=TEXT
        ),
    ] = False,
    tokenize: Annotated[
        str | None,
        typer.Option(
            help=f"BLEU tokenizer (sacrebleu's -tok): {', '.join(scoring.TOKENIZERS)} "
            "(default: 13a).",
            rich_help_panel=TEXT,
        ),
    ] = None,
    lowercase: Annotated[
        bool,
        typer.Option(
            "--lowercase",
            help="Case-insensitive BLEU (sacrebleu's -lc; chrF is case-sensitive and TER "
            "case-insensitive, as there).",
            rich_help_panel=TEXT,
        ),
    ] = False,
    encoding_errors: Annotated[
        str,
        typer.Option(
            help="Invalid UTF-8 in --sys/--ref: strict (stop, naming file:line) or replace.",
            rich_help_panel=TEXT,
        ),
    ] = "strict",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the data-set (or corpus) result as JSON.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    quantize: Annotated[
        Quantize, typer.Option(help="Run the model with int8 weights (dynamic quantization).")
    ] = Quantize.none,
    threads: ThreadsOption = 0,
    user_dir: UserDirOption = None,
) -> None:
    """Perplexity of a language model, span F1 and accuracies of a tagger or classifier, BLEU/
    chrF/TER of a system output (as sacrebleu), or span F1 and accuracy of predicted tags.

    With DATA and --path, a tagging checkpoint prints loss, f1 (CoNLL spans), precision, recall,
    acc (per tag), label_acc (label head) and sent_acc; a classification one loss and acc
    (percent).

    Examples: `rnnkit score data-bin/ptb --path runs/ptb/checkpoint_best.pt --subset valid` ·
    `rnnkit score runs/atis/data --path runs/atis/bilstm/checkpoint_best.pt --subset valid` ·
    `printf 'the apple and pear salad\\n' | rnnkit score --path runs/ptb/checkpoint_best.pt
    --input -` · `rnnkit score --path mt.pt --input test.en --reference test.de
    --print-token-scores` · `rnnkit score --sys hyp.de --ref ref.de --metric bleu,chrf,ter` ·
    `rnnkit score --sys hyp.tags --ref atis/valid/seq.out --metric f1,acc`

    Log-probabilities are natural logs (nats) everywhere.
    """
    set_threads(threads)
    raw = RawOptions(buffer_size, max_positions, skip_invalid_size_inputs, print_token_scores)
    if sys_file is not None:
        lm_options = {"--path": path, "DATA": data, "--input": input, "--reference": reference}
        lm_options["--quantize"] = None if quantize is Quantize.none else quantize
        lm_options |= {"--batch-size": batch_size, "--bptt": bptt, **raw.given()}
        given = [name for name, value in lm_options.items() if value is not None]
        if given:
            raise RnnkitError(f"--sys scores text and takes no model options: drop {given[0]}")
        if metric is not None and scoring.metric_family(metric) == "tags":
            bleu_options = {"--tokenize": tokenize, "--lowercase": lowercase or None}
            bleu_options |= {"--sentence-level": sentence_level or None}
            given = [name for name, value in bleu_options.items() if value is not None]
            if given:
                raise RnnkitError(f"{given[0]} applies to bleu, chrf and ter, not to {metric}")
            _score_tags(sys_file, refs or [], metric, encoding_errors, as_json)
            return
        _score_text(
            sys_file,
            refs or [],
            metric or "bleu",
            sentence_level,
            tokenize or "13a",
            lowercase,
            encoding_errors,
            as_json,
        )
        return
    text_options = {"--ref": refs, "--metric": metric, "--tokenize": tokenize}
    text_options |= {"--sentence-level": sentence_level or None, "--lowercase": lowercase or None}
    given = [name for name, value in text_options.items() if value is not None]
    if given:
        raise RnnkitError(f"{given[0]} applies to text scoring: give --sys FILE|- as well")
    if input is None and (raw.given() or reference is not None):
        name = "--reference" if reference is not None else next(iter(raw.given()))
        raise RnnkitError(f"{name} applies to --input FILE|-")
    setup_plugins(user_dir)
    if not path:
        raise RnnkitError("--path CHECKPOINT is required (or --sys FILE --ref FILE to score text)")
    model = _load(checkpoint_paths(path), device, quantize.value)
    if input is not None:
        _score_raw(model, input, reference, raw, batch_size)
        return
    if data is None:
        raise RnnkitError("give a DATA directory (with --subset) or --input FILE|-")
    from rnnkit.tasks.inference import ScoreOptions, SplitRequest

    split = SplitRequest(data, subset, batch_size)
    model.score_split(split, ScoreOptions(bptt, as_json), sys.stdout)


def _load(paths: list[Path], device: str, quantize: str) -> Any:
    """``rnnkit.load`` of one checkpoint or an ensemble (imported here: it imports torch)."""
    from rnnkit.hub import load

    return load(paths, device, quantize=quantize)


def _score_raw(
    model: Any, source: str, reference: str | None, raw: RawOptions, batch_size: int | None
) -> None:
    """``--input`` (with ``--reference``: line pairs of a translation model): JSON lines."""
    from dataclasses import replace

    from rnnkit_cli.rawlines import lines_request, read_batches, read_pair_batches, source_name

    max_positions = 1024 if raw.max_positions is None else raw.max_positions
    lines = lines_request(source, max_positions, raw.skip_invalid, batch_size or 64)
    lines = replace(lines, token_scores=raw.token_scores)
    if reference is None:
        model.score_lines(read_batches(source, raw.buffer_size), lines, sys.stdout)
        return
    if not hasattr(model, "score_references"):
        raise RnnkitError(
            f"--reference scores translations given their sources: a translation model's "
            f"job, and this checkpoint is task {model.task_name!r}"
        )
    lines = replace(lines, reference_name=source_name(reference))
    batches = read_pair_batches(source, reference, raw.buffer_size)
    model.score_references(batches, lines, sys.stdout)


def _score_text(
    sys_file: str,
    refs: list[Path],
    metric: str,
    sentence_level: bool,
    tokenize: str,
    lowercase: bool,
    errors: str,
    as_json: bool,
) -> None:
    """Score ``sys_file`` against ``refs`` and print sacrebleu's text or JSON output."""
    metrics = scoring.parse_metrics(metric)
    sys_name, hyps = _read_sys(sys_file, refs, errors)
    ref_lines = [scoring.read_segments(r, errors) for r in refs]
    scoring.check_lengths(hyps, ref_lines, sys_name, [str(r) for r in refs])
    if sentence_level:
        for lineno, results in enumerate(
            scoring.sentence_scores(hyps, ref_lines, metrics, tokenize, lowercase), 1
        ):
            if as_json:
                print(json.dumps({"line": lineno, "scores": [r.record for r in results]}))
            else:
                print("\t".join(r.text for r in results))
        return
    results = scoring.corpus_scores(hyps, ref_lines, metrics, tokenize, lowercase)
    print(scoring.format_json(results) if as_json else "\n".join(scoring.format_text(results)))


def _read_sys(sys_file: str, refs: list[Path], errors: str) -> tuple[str, list[str]]:
    """The name and lines of ``--sys`` (a file or ``-``), after checking the shared options."""
    if errors not in ("strict", "replace"):
        raise RnnkitError(f"--encoding-errors must be strict or replace, not {errors!r}")
    if not refs:
        raise RnnkitError("--sys needs at least one --ref FILE")
    if sys_file == "-":
        return "<stdin>", scoring.split_segments(sys.stdin.buffer.read(), errors=errors)
    return sys_file, scoring.read_segments(sys_file, errors)


def _score_tags(sys_file: str, refs: list[Path], metric: str, errors: str, as_json: bool) -> None:
    """Span F1 / accuracies of the tag or label lines of ``sys_file`` against one reference."""
    if len(refs) > 1:
        raise RnnkitError(f"--metric {metric} takes one --ref FILE, not {len(refs)}")
    sys_name, hyps = _read_sys(sys_file, refs, errors)
    ref_lines = scoring.read_segments(refs[0], errors)
    results = scoring.tag_scores(hyps, ref_lines, metric, sys_name, str(refs[0]))
    print(scoring.format_json(results) if as_json else "\n".join(scoring.format_text(results)))


@dataclass(frozen=True)
class RawOptions:
    """The options of ``--input`` (None / False: not given)."""

    buffer_size: int | None
    max_positions: int | None
    skip_invalid: bool
    token_scores: bool = False

    def __post_init__(self) -> None:
        if self.max_positions is not None and self.max_positions < 1:
            raise RnnkitError(f"--max-positions must be at least 1, not {self.max_positions}")

    def given(self) -> dict[str, object]:
        """The options given on the command line, by name."""
        named = {"--buffer-size": self.buffer_size, "--max-positions": self.max_positions}
        named["--skip-invalid-size-inputs"] = self.skip_invalid or None
        named["--print-token-scores"] = self.token_scores or None
        return {name: value for name, value in named.items() if value is not None}
