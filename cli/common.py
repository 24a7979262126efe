"""Options shared by several subcommands, and command-line options built from config dataclasses.

:func:`dataclass_parameters` turns the fields of a typed config dataclass (help and ``--help``
panel in each field's metadata) into keyword parameters typer reads, so a command's options have
one source of truth; :func:`click_options` turns such parameters into click options for a command
that adds options at parse time (``rnnkit train --arch NAME``).

torch is imported only inside :func:`set_threads`: commands that never touch a model (``rnnkit
--help``, ``rnnkit models``, ``rnnkit score --sys``) import this module and must start fast.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer

from rnnkit.config import fields_of, kebab
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
        import torch  # here, not at the top: see the module docstring

        torch.set_num_threads(threads)


def cli_type(tp: Any) -> Any:
    """The type typer parses for a config field (Literals and tuples arrive as strings)."""
    origin = get_origin(tp)
    if origin is Literal or origin is tuple:
        return str
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return cli_type(inner[0]) | None
    return tp


def _option_default(f: dataclasses.Field) -> Any:
    """A field's default as typer shows and parses it (a tuple as ``a,b``)."""
    default = f.default
    if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    return ",".join(map(str, default)) if isinstance(default, tuple) else default


def flag_names(name: str) -> str:
    """The ``--on/--off`` declaration of boolean field ``name``: ``no_epoch_checkpoints`` is
    ``--no-epoch-checkpoints/--epoch-checkpoints``, never ``--no-no-epoch-checkpoints``."""
    if name.startswith("no_"):
        return f"--{kebab(name)}/--{kebab(name[3:])}"
    return f"--{kebab(name)}/--no-{kebab(name)}"


def dataclass_parameters(
    cls: type,
    *,
    panel: Callable[[dataclasses.Field], str | None] | None = None,
    hidden: Collection[str] = (),
) -> list[inspect.Parameter]:
    """One keyword-only parameter per field of the dataclass ``cls``, for a typer command.

    Help comes from ``metadata["help"]``; the ``--help`` panel from ``panel(field)`` (default:
    ``metadata["group"]``); bools are ``--name/--no-name`` flags (:func:`flag_names`); fields
    named in ``hidden`` are accepted but not listed. Values arrive typed as :func:`cli_type` says;
    give them (with the other layers) to :func:`rnnkit.config.resolve`, which converts Literals
    and tuples.
    """
    params = []
    for name, f in fields_of(cls).items():
        tp = cli_type(f.type)
        flag = flag_names(name) if tp is bool else f"--{kebab(name)}"
        option = typer.Option(
            flag,
            help=f.metadata.get("help", ""),
            rich_help_panel=panel(f) if panel else f.metadata.get("group"),
            show_default=True,
            hidden=name in hidden,
        )
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=_option_default(f),
                annotation=Annotated[tp, option],
            )
        )
    return params


def click_options(parameters: list[inspect.Parameter]) -> list[Any]:
    """The click options typer makes of ``parameters`` (as built by :func:`dataclass_parameters`).

    Built through a throwaway one-command typer app, so they parse and show in ``--help``
    exactly like options declared in a signature.
    """
    if not parameters:
        return []

    def stub(**_: Any) -> None:
        """Stub."""

    stub.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    holder = typer.Typer(add_completion=False)
    holder.command()(stub)
    return list(typer.main.get_command(holder).params)
