"""A command line that starts fast: ``rnnkit --help``, ``--version``, ``models``, ``score
--sys/--ref`` and ``preprocess --help`` never import torch; subcommands load lazily from the
table in :mod:`rnnkit_cli.main`, whose one-line helps match the commands' own; ``rnnkit models``
prints the same lines from its catalog as from the live registries."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import rnnkit_cli.main as cli_main
import rnnkit_cli.models as models_cli
from rnnkit_cli.catalog import CATALOG
from tests.helpers import run_main

runner = CliRunner()

# One fresh interpreter runs each command line in turn and reports, after each, whether torch
# (or any subcommand module besides the one run) has been imported.
PROBE = """
import json, sys
import rnnkit, rnnkit.errors, rnnkit.io, rnnkit.config, rnnkit.registry, rnnkit.scoring
from rnnkit_cli.main import COMMANDS, main
report = {"import rnnkit": {"torch": "torch" in sys.modules}}
for argv in json.loads(sys.argv[1]):
    sys.argv = ["rnnkit", *argv]
    try:
        main()
    except SystemExit as e:
        code = e.code
    loaded = sorted(n for n in COMMANDS if "rnnkit_cli." + n in sys.modules)
    report[" ".join(argv)] = {"torch": "torch" in sys.modules, "code": code, "loaded": loaded}
print(json.dumps(report), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """The probe's report, and the stdout of the commands it ran."""
    tmp = tmp_path_factory.mktemp("startup")
    (tmp / "hyp.txt").write_text("the cat sat\na dog\n")
    (tmp / "ref.txt").write_text("the cat sat down\na dog\n")
    argvs = [["--help"], ["--version"], ["models"], ["models", "--help"], ["score", "--help"]]
    argvs.append(["score", "--sys", str(tmp / "hyp.txt"), "--ref", str(tmp / "ref.txt")])
    argvs.append(["preprocess", "--help"])
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argvs)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report, proc.stdout


@pytest.mark.parametrize(
    "key",
    [
        "import rnnkit",
        "--help",
        "--version",
        "models",
        "models --help",
        "score --help",
        "score",
        "preprocess --help",
    ],
)
def test_command_does_not_import_torch(probe, key):
    report, _ = probe
    key = next(k for k in report if k == key or k.startswith("score --sys") and key == "score")
    assert report[key]["torch"] is False, f"`rnnkit {key}` imported torch"
    assert report[key].get("code", 0) in (0, None), report[key]


def test_help_and_version_import_no_subcommand(probe):
    report, out = probe
    assert report["--help"]["loaded"] == []
    assert report["--version"]["loaded"] == []
    assert "rnnkit 0.1.0\n" in out
    assert all(name in out for name in ("preprocess", "generate", "models"))


def test_models_from_the_catalog_prints_what_the_registries_do(probe, monkeypatch):
    _, out = probe
    from_catalog = out[out.index("Architectures and presets") :]
    monkeypatch.setattr(models_cli, "catalog_usable", lambda: False)
    live = run_main("models").stdout
    assert live.startswith("Architectures and presets")
    assert from_catalog.startswith(live), "rnnkit models: catalog and registries differ"


def test_catalog_matches_the_registries():
    live = models_cli.live_listing(builtin_only=True)
    assert list(CATALOG.items()) == live, (
        "cli/catalog.py is stale: run `python -m rnnkit_cli.models --write-catalog`"
    )


def test_models_uses_the_registries_with_a_user_dir(tmp_path):
    (tmp_path / "empty_plugin").mkdir()
    (tmp_path / "empty_plugin" / "__init__.py").write_text("")
    assert not models_cli.plugins_loaded()
    out = run_main("models", "--user-dir", str(tmp_path / "empty_plugin")).stdout
    assert models_cli.plugins_loaded() and not models_cli.catalog_usable()
    assert out == run_main("models").stdout


def short_help(command) -> str:
    """The first paragraph of a command's help, on one line (what a command list shows)."""
    return inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ").strip()


@pytest.mark.parametrize("name", list(cli_main.COMMANDS))
def test_table_help_is_the_command_help(name):
    module, line = cli_main.COMMANDS[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this tree")
    command = cli_main.load_command(name)
    assert command.name == name
    assert line == short_help(command), f"update COMMANDS[{name!r}] in cli/main.py"


def test_a_missing_subcommand_module_breaks_nothing(monkeypatch):
    table = {**cli_main.COMMANDS, "ghost": ("rnnkit_cli.no_such_module", "Not installed.")}
    monkeypatch.setattr(cli_main, "COMMANDS", table)
    result = runner.invoke(cli_main.app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "generate" in result.output and "ghost" not in result.output
    result = runner.invoke(cli_main.app, ["ghost"])
    assert result.exit_code == 2 and "No such command" in result.output
    assert runner.invoke(cli_main.app, ["models"]).exit_code == 0


def test_unknown_command_suggests_the_closest():
    result = run_main("gnerate", check=False)
    assert result.returncode == 2
    assert "Did you mean 'generate'?" in result.stderr


def test_version_option():
    result = runner.invoke(cli_main.app, ["--version"])
    assert result.exit_code == 0 and result.output == "rnnkit 0.1.0\n"
    assert typer.main.get_command(cli_main.app).name == "rnnkit"
