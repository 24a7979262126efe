"""``rnnkit generate``'s search options are generated from ``SearchConfig``'s fields."""

from __future__ import annotations

import typer

from rnnkit.config import fields_of
from rnnkit.generation.search import SearchConfig
from rnnkit_cli.generate import app


def test_search_options_are_the_fields_of_search_config():
    command = typer.main.get_command(app)
    params = {p.name: p for p in command.params}
    shown = [name for name, f in fields_of(SearchConfig).items() if f.metadata.get("cli", True)]
    assert shown[:3] == ["beam", "nbest", "max_len_a"] and "early_stop" not in params
    for name in shown:
        f = fields_of(SearchConfig)[name]
        assert params[name].default == f.default, name
        assert params[name].help == f.metadata["help"], name
        assert params[name].rich_help_panel == "Search (translation)", name
    order = [p.name for p in command.params]
    assert order.index("skip_invalid_size_inputs") + 1 == order.index("beam")  # as before
    assert order.index("seed") + 1 == order.index("replace_unk")
