"""Typed requests of the command line's ``generate`` and ``score`` to an inference object.

The command line parses options and reads raw input; an inference object
(:class:`~rnnkit.tasks.inference.base.Pretrained`) decides what its task does with them. A
binarized split comes as a :class:`SplitRequest`, raw lines as :class:`LineBatches` (lists of
``(line number, text)``, each handed over as soon as it is read) with a :class:`LinesRequest`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.errors import RnnkitError
from rnnkit.generation.search import SearchConfig

LineBatches = Iterable[list[tuple[int, str]]]  # raw lines, (1-based line number, text) each
# raw line pairs (``score --input SRC --reference TGT``): (1-based line number, source, reference)
PairBatches = Iterable[list[tuple[int, str, str]]]
OUTPUT_FORMATS = ("plain", "jsonl")


@dataclass(frozen=True)
class SplitRequest:
    """A split of a binarized data directory: ``subset`` of ``data``, in batches of
    ``batch_size`` sentences (None: the size the model was trained with) and at most
    ``max_tokens`` source tokens (0: no bound)."""

    data: Path
    subset: str
    batch_size: int | None = None
    max_tokens: int = 0


@dataclass(frozen=True)
class LinesRequest:
    """How to treat raw lines: ``source_name`` (a file name or ``<stdin>``) names them in
    warnings; a line of more than ``max_positions`` tokens is truncated, or skipped with
    ``skip_invalid``; ``batch_size`` lines at most are run together. Scoring: ``token_scores``
    adds each token's log-prob to a line's result; ``reference_name`` names the file of the
    given outputs of line pairs."""

    source_name: str = "<input>"
    max_positions: int = 1024
    skip_invalid: bool = False
    batch_size: int = 64
    token_scores: bool = False
    reference_name: str = "<reference>"


@dataclass(frozen=True)
class GenerateOptions:
    """``rnnkit generate``'s options besides its input: the search (translation), what to print
    and where to plot. ``quiet``: print only the final scores of a split; ``replace_unk``:
    replace ``<unk>`` by its aligned source word (``""``) or that word's entry in a ``source
    target`` dictionary file. ``score_reference``: score the split's references instead of
    searching; ``print_scores`` / ``output_format`` (``plain`` or ``jsonl``): how raw lines'
    n-best lists are printed."""

    search: SearchConfig = field(default_factory=SearchConfig)
    quiet: bool = False
    print_label: bool = False
    replace_unk: str | None = None  # None: off; "": copy the source word; else a DICT file
    print_alignment: bool = False
    plot_attention: Path | None = None
    post_process: bool = True
    score_reference: bool = False
    print_scores: bool = False
    output_format: str = "plain"

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise RnnkitError(
                f"--output-format must be {' or '.join(OUTPUT_FORMATS)}, not {self.output_format!r}"
            )


@dataclass(frozen=True)
class ScoreOptions:
    """``rnnkit score``'s options for a model on a split: the window of a language model
    (``bptt``, None: the training one) and JSON output."""

    bptt: int | None = None
    as_json: bool = False
