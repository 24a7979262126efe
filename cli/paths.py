"""``--path`` of ``generate``, ``score`` and ``sample``: one checkpoint, or an ensemble.

fairseq's form ``--path a.pt:b.pt[:c.pt]`` names the models of an ensemble; repeating the
option (``--path a.pt --path b.pt``) adds models too, so a repeated ``--path`` never silently
keeps only the last one. No torch here: option parsing must stay cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.errors import RnnkitError

PATH_HELP = (
    "Checkpoint to use; an ensemble as a.pt:b.pt[:c.pt] (or --path repeated): the models' "
    "probabilities are averaged."
)


def paths_option(help: str = PATH_HELP) -> object:  # noqa: A002
    """The typer option of a ``--path`` that may be repeated."""
    return typer.Option("--path", help=help)


PathsOption = Annotated[list[str] | None, paths_option()]


def checkpoint_paths(values: list[str] | None, default: str | None = None) -> list[Path]:
    """The checkpoints ``--path`` names, in order: every value split at ``:``.

    ``default`` is used when ``--path`` is not given (None: ``--path`` is required). An empty
    element (``a.pt::b.pt``, a trailing ``:``) is a one-line error.
    """
    given = list(values or ([] if default is None else [default]))
    if not given:
        raise RnnkitError("--path is required: a checkpoint, or a.pt:b.pt for an ensemble")
    paths = []
    for value in given:
        parts = value.split(":")
        if any(not part for part in parts):
            raise RnnkitError(f"--path {value}: an empty checkpoint name (a.pt:b.pt is the form)")
        paths.extend(Path(part) for part in parts)
    return paths
