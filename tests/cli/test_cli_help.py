"""Every subcommand's ``--help`` is complete (an example, a help text for every option and
argument), and shell completion is on: ``--install-completion``/``--show-completion`` exist and
the completion protocol answers with command and option names."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import typer
from typer.testing import CliRunner

from rnnkit_cli.main import app

runner = CliRunner()
COMMANDS = ("preprocess", "train", "generate", "sample", "score", "models")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example_and_documents_every_parameter(name):
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    assert (command.help or "").strip()
    undocumented = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert undocumented == []


def test_top_level_help_lists_the_completion_options():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output
    for name in COMMANDS:
        assert name in result.output


def complete(rnnkit_bin: str, words: str) -> list[str]:
    """What bash completion offers for the command line ``words`` (the last word is partial)."""
    env = dict(os.environ, _RNNKIT_COMPLETE="complete_bash", COMP_WORDS=words,
               COMP_CWORD=str(len(words.split()) - 1))  # fmt: skip
    proc = subprocess.run([rnnkit_bin], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.e2e
def test_bash_completion_of_commands_and_options(rnnkit_bin):
    assert complete(rnnkit_bin, "rnnkit gen") == ["generate"]
    assert complete(rnnkit_bin, "rnnkit generate --print-l") == ["--print-label"]
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    # `; true` keeps bash from exec'ing rnnkit, so bash is the parent whose shell is detected.
    proc = subprocess.run(["bash", "-c", f"{rnnkit_bin} --show-completion; true"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "complete -o default -F _rnnkit_completion rnnkit" in proc.stdout, proc.stderr
