"""``rnnkit models``: list every registry (architectures and presets, models, tasks, cells,
attention scores, criteria, optimizers, LR schedulers, tokenizers), or show one architecture's
fields.

Each entry is one line of aligned columns, each as wide as its longest value plus two spaces,
so a long name never runs into its description.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rnnkit.config import describe
from rnnkit.models import ARCH_REGISTRY, MODEL_REGISTRY
from rnnkit.registry import Entry, Registry, registries
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()
out = Console(soft_wrap=True)

# The modules whose import makes the built-in registries, and each registry's heading, in order.
REGISTRY_MODULES = (
    "rnnkit.models", "rnnkit.tasks", "rnnkit.modules.cells", "rnnkit.modules.attention",
    "rnnkit.training.criteria", "rnnkit.training.optim", "rnnkit.tokenizers",
)  # fmt: skip
HEADINGS = {
    "architecture": "Architectures and presets (model, description)",
    "model": "Models (task, description)",
    "task": "Tasks",
    "cell": "Cells",
    "attention": "Attention scores",
    "criterion": "Criteria",
    "optimizer": "Optimizers",
    "lr scheduler": "LR schedulers",
    "tokenizer": "Tokenizers",
}


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """``rows`` as lines of left-aligned columns separated by at least two spaces."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "".join(cell.ljust(w + 2) for cell, w in zip(row[:-1], widths, strict=True)) + row[-1]
        for row in rows
    ]


def row(kind: str, e: Entry) -> tuple[str, ...]:
    """An entry's columns: an architecture names its model, a model its task."""
    if kind == "architecture":
        return (e.name, e.obj.model, e.description)
    if kind == "model":
        return (e.name, str(getattr(e.obj, "task_name", "")), e.description)
    return (e.name, e.description)


def ordered(found: list[Registry]) -> list[Registry]:
    """The built-in registries in :data:`HEADINGS` order, then any a plugin made."""
    rank = list(HEADINGS)
    return sorted(found, key=lambda r: rank.index(r.kind) if r.kind in rank else len(rank))


def list_registries() -> None:
    """Print every registry: a heading, then one line per entry."""
    for module in REGISTRY_MODULES:
        importlib.import_module(module)
    for i, registry in enumerate(ordered(registries())):
        heading = HEADINGS.get(registry.kind, f"{registry.kind.capitalize()} (plugin registry)")
        out.print(("\n" if i else "") + heading, markup=False, highlight=False)
        for line in columns([row(registry.kind, e) for e in registry]):
            out.print(f"  {line}".rstrip(), markup=False, highlight=False)


@app.command("models")
def models(
    name: Annotated[str | None, typer.Argument(help="An architecture to describe.")] = None,
    user_dir: UserDirOption = None,
) -> None:
    """List every registry (architectures and presets, models, tasks, cells, attention scores,
    criteria, optimizers, LR schedulers, tokenizers), or the config fields of one architecture.

    Example: `rnnkit models` then `rnnkit models lstm_lm_zaremba_small`.
    """
    setup_plugins(user_dir)
    if name is None:
        list_registries()
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
