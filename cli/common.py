"""Options shared by several subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
