"""Options shared by several subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from rnnkit.errors import RnnkitError
from rnnkit.registry import load_plugins

UserDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--user-dir",
        help="Import this folder (a Python package) to register extra models, tasks or tokenizers.",
        metavar="DIR",
        rich_help_panel="Plugins",
    ),
]


def setup_plugins(user_dir: list[Path] | None) -> None:
    """Load entry-point plugins and the ``--user-dir`` folders before resolving any name."""
    load_plugins([str(d) for d in user_dir or []])


ThreadsOption = Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default).")]


def set_threads(threads: int) -> None:
    """``--threads``: torch's CPU threads (0 leaves torch's default)."""
    if threads < 0:
        raise RnnkitError(f"--threads must be 0 (torch's default) or more, not {threads}")
    if threads > 0:
        torch.set_num_threads(threads)
