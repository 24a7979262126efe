"""``rnnkit preprocess``: parse options into a PreprocessConfig and call the library.

Help texts and defaults come from :class:`~rnnkit.data.preprocess.PreprocessConfig`, so the two
cannot drift; an option left out here stays ``None`` and takes the dataclass default.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from rnnkit.config import resolve
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()

_FIELDS = {f.name: f for f in dataclasses.fields(PreprocessConfig)}
DATA, DICT, TOK, RUN = "Data", "Dictionary", "Tokenizer", "Run"


def _opt(name: str, *flags: str, panel: str) -> Any:
    """A typer option for config field ``name`` with its help and default from the dataclass."""
    f = _FIELDS[name]
    default = f.default if f.default not in (None, ()) else None
    shown = f" [default: {default}]" if default is not None and default is not False else ""
    names = flags or ("--" + name.replace("_", "-"),)
    return typer.Option(*names, help=f.metadata["help"] + shown, rich_help_panel=panel)


@app.command("preprocess")
def preprocess_command(
    task: Annotated[str | None, _opt("task", panel=DATA)] = None,
    trainpref: Annotated[str | None, _opt("trainpref", panel=DATA)] = None,
    validpref: Annotated[str | None, _opt("validpref", panel=DATA)] = None,
    testpref: Annotated[str | None, _opt("testpref", panel=DATA)] = None,
    source_lang: Annotated[
        str | None, _opt("source_lang", "-s", "--source-lang", panel=DATA)
    ] = None,
    target_lang: Annotated[
        str | None, _opt("target_lang", "-t", "--target-lang", panel=DATA)
    ] = None,
    destdir: Annotated[str | None, _opt("destdir", panel=DATA)] = None,
    encoding_errors: Annotated[str | None, _opt("encoding_errors", panel=DATA)] = None,
    tokenizer: Annotated[str | None, _opt("tokenizer", panel=TOK)] = None,
    spm_vocab_size: Annotated[int | None, _opt("spm_vocab_size", panel=TOK)] = None,
    spm_model_type: Annotated[str | None, _opt("spm_model_type", panel=TOK)] = None,
    spm_sample_lines: Annotated[int | None, _opt("spm_sample_lines", panel=TOK)] = None,
    threshold: Annotated[int | None, _opt("threshold", panel=DICT)] = None,
    thresholdsrc: Annotated[int | None, _opt("thresholdsrc", panel=DICT)] = None,
    thresholdtgt: Annotated[int | None, _opt("thresholdtgt", panel=DICT)] = None,
    nwords: Annotated[int | None, _opt("nwords", panel=DICT)] = None,
    nwordssrc: Annotated[int | None, _opt("nwordssrc", panel=DICT)] = None,
    nwordstgt: Annotated[int | None, _opt("nwordstgt", panel=DICT)] = None,
    padding_factor: Annotated[int | None, _opt("padding_factor", panel=DICT)] = None,
    joined_dictionary: Annotated[bool, _opt("joined_dictionary", panel=DICT)] = False,
    srcdict: Annotated[str | None, _opt("srcdict", panel=DICT)] = None,
    tgtdict: Annotated[str | None, _opt("tgtdict", panel=DICT)] = None,
    workers: Annotated[int | None, _opt("workers", panel=RUN)] = None,
    force: Annotated[bool, _opt("force", panel=RUN)] = False,
    keep_empty: Annotated[
        bool | None, _opt("keep_empty", "--keep-empty/--drop-empty", panel=DATA)
    ] = None,
    user_dir: UserDirOption = None,
) -> None:
    """Tokenize raw text, build dictionaries and write memory-mapped .bin/.idx datasets.

    Examples: `rnnkit preprocess --task lm --tokenizer char --trainpref train.txt
    --validpref valid.txt --destdir data-bin/shakespeare`;
    `rnnkit preprocess --task translation -s de -t en --trainpref train --validpref val
    --joined-dictionary --destdir data-bin/multi30k`;
    `rnnkit preprocess --task tagging --trainpref atis/train --validpref atis/valid
    --destdir data-bin/atis` (folders of seq.in, seq.out and an optional label file;
    `--task classification` reads seq.in and label).
    """
    setup_plugins(user_dir)
    given = {k: v for k, v in locals().items() if k in _FIELDS and v is not None}
    preprocess(resolve(PreprocessConfig, given))
