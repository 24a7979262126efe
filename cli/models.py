"""``rnnkit models``: list architectures and presets, or show one's fields."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rnnkit.config import describe
from rnnkit.models import ARCH_REGISTRY, MODEL_REGISTRY
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()
out = Console(soft_wrap=True)


@app.command("models")
def models(
    name: Annotated[str | None, typer.Argument(help="An architecture to describe.")] = None,
    user_dir: UserDirOption = None,
) -> None:
    """List every registered architecture and preset, or the config fields of one.

    Example: `rnnkit models` then `rnnkit models lstm_lm_zaremba_small`.
    """
    setup_plugins(user_dir)
    if name is None:
        for e in ARCH_REGISTRY:
            out.print(f"{e.name:28s} {e.obj.model:16s} {e.description}", markup=False)
        return
    arch = ARCH_REGISTRY.get(name)
    cls = MODEL_REGISTRY.get(arch.model)
    table = Table(title=f"{name} (model {arch.model}): {ARCH_REGISTRY.entry(name).description}")
    for col in ("option", "type", "default", "help"):
        table.add_column(col)
    for opt, tp, default, help_ in describe(cls.config_class):
        field = opt[2:].replace("-", "_")
        if field in arch.overrides:
            default = f"{arch.overrides[field]!r} (preset)"
        table.add_row(opt, tp, default, help_)
    out.print(table)
