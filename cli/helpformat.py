"""How ``--help`` renders: help texts shown as written, option names never cut.

typer renders help as Markdown (``rich_markup_mode="markdown"``, so `` `code` `` and paragraphs
read well), where ``<unk>``, ``</s>`` or ``<pad>`` are inline HTML and vanish:
:func:`escape_markup` escapes them outside code spans, for the time of one rendering only
(:func:`rendered_as_written`), so the texts stay plain everywhere else (shell completion, the
config dataclasses).

typer lays an options panel out in separate columns for the long name, the short name, the
negative name (``--no-x``), the type and the help; at 80 columns two long names take most of the
width and rich cuts them with an ellipsis. :func:`print_options_panel` lays a panel out with one
column of names instead (the negative name on its own line), never wrapped or cut, and lets the
help take the rest. It replaces typer's panel printer while one help is rendered; a typer that
lacks the functions it uses keeps its own layout.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from rich.panel import Panel
from rich.table import Table
from rich.text import Text

#: A backtick code span (kept as is), or a ``<`` that Markdown would read as the start of a tag.
_SPAN_OR_TAG = re.compile(r"(`+)(?:.|\n)*?\1|(?<!\\)<(?=[A-Za-z/!?])")


def escape_markup(text: str) -> str:
    """``text`` with every ``<`` that Markdown would take for an HTML tag (``<unk>``, ``</s>``)
    escaped, except inside `` `code` ``; escaping twice changes nothing."""
    return _SPAN_OR_TAG.sub(lambda m: m.group(0) if m.group(1) else "\\<", text)


def option_names(param: Any) -> Text:
    """The names of ``param`` as the first column shows them: ``--name, -n`` on the first line,
    the negative names on the second; an argument shows its metavar."""
    try:
        from typer.core import TyperArgument
    except ImportError:  # pragma: no cover - typer always has it
        TyperArgument = ()  # noqa: N806
    if isinstance(param, TyperArgument):
        name = param.display_name_raw + (
            "..." if param.metavar is None and param.nargs != 1 else ""
        )
        return Text(name, style="bold cyan")
    longs = [o for o in param.opts if o.startswith("--")]
    shorts = [o for o in param.opts if not o.startswith("--")]
    text = Text(", ".join(longs + shorts), style="bold cyan")
    if param.secondary_opts:
        text.append("\n" + ", ".join(param.secondary_opts), style="bold magenta")
    return text


def print_options_panel(
    *, name: str, params: list[Any], ctx: Any, markup_mode: str, console: Any
) -> None:
    """typer's ``_print_options_panel`` with one unbreakable column of names (see the module
    docstring); the type, the required marker and the help (with its default) are typer's."""
    from typer import rich_utils

    if not params:
        return
    table = Table(show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    required = any(p.required for p in params)
    if required:
        table.add_column(no_wrap=True)
    widest = max(max(map(len, option_names(p).plain.split("\n"))) for p in params)
    table.add_column(no_wrap=True, min_width=widest)
    table.add_column(no_wrap=True, style=rich_utils.STYLE_TYPES)
    table.add_column(ratio=1, overflow="fold")
    for param in params:
        kind = param.display_type_rich(ctx=ctx) or ""
        bounds = getattr(param, "_get_number_range_help_str", lambda: None)()
        kind += f" [{bounds}]" if bounds else ""
        help_ = rich_utils._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode)
        for part in getattr(help_, "renderables", []):
            if isinstance(part, Text):  # "[default: no-maximize-best-...]" folds, is not cut
                part.overflow = "fold"
        cells: list[Any] = [option_names(param), kind, help_]
        if required:
            star = rich_utils.REQUIRED_SHORT_STRING if param.required else ""
            cells.insert(0, Text(star, style=rich_utils.STYLE_REQUIRED_SHORT))
        table.add_row(*cells)
    console.print(
        Panel(table, border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER, title=name,
              title_align=rich_utils.ALIGN_OPTIONS_PANEL)
    )  # fmt: skip


def _typer_has_panels() -> bool:
    try:
        from typer import rich_utils
    except ImportError:  # typer without rich: plain click help, nothing to replace
        return False
    needed = ("_print_options_panel", "_get_parameter_help", "REQUIRED_SHORT_STRING")
    return all(hasattr(rich_utils, n) for n in needed)


@contextlib.contextmanager
def rendered_as_written(command: Any, ctx: Any) -> Iterator[None]:
    """While rendering ``command``'s help: its help texts escaped for Markdown and options panels
    laid out by :func:`print_options_panel`; everything is put back afterwards."""
    items = [command, *command.get_params(ctx)]
    saved = [(item, item.help) for item in items if getattr(item, "help", None)]
    patched = _typer_has_panels()
    if patched:
        from typer import rich_utils

        typer_panel = rich_utils._print_options_panel
        rich_utils._print_options_panel = print_options_panel
    for item, text in saved:
        item.help = escape_markup(text)
    try:
        yield
    finally:
        for item, text in saved:
            item.help = text
        if patched:
            rich_utils._print_options_panel = typer_panel
