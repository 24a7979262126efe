"""Every subcommand's ``--help`` is complete (an example, a help text for every option and
argument), and shell completion is on: ``--install-completion``/``--show-completion`` exist and
the completion protocol answers with command and option names."""

from __future__ import annotations

import os
import shutil
from unittest import mock

import pytest
from typer.testing import CliRunner

from rnnkit_cli.main import app, load_command
from tests.helpers import run_main, run_rnnkit

runner = CliRunner()
COMMANDS = ("preprocess", "train", "generate", "sample", "score", "models")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example_and_documents_every_parameter(name):
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    command = load_command(name)  # subcommands load lazily: the group holds none up front
    assert (command.help or "").strip()
    undocumented = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert undocumented == []


def test_top_level_help_lists_the_completion_options():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output
    for name in COMMANDS:
        assert name in result.output


def complete(words: str) -> list[str]:
    """What bash completion offers for the command line ``words`` (the last word is partial);
    in-process: the protocol runs in the entry point's click ``main``, as in the command."""
    env = {"_RNNKIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}  # fmt: skip
    with mock.patch.dict(os.environ, env):
        return run_main().stdout.split()


def test_bash_completion_of_commands_and_options():
    assert complete("rnnkit gen") == ["generate"]
    assert complete("rnnkit generate --print-l") == ["--print-label"]


@pytest.mark.e2e
@pytest.mark.slow
def test_bash_detects_itself_for_show_completion(rnnkit_bin):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    # `; true` keeps bash from exec'ing rnnkit, so bash is the parent whose shell is detected.
    proc = run_rnnkit("bash", "-c", f"{rnnkit_bin} --show-completion; true", timeout=60)
    assert "complete -o default -F _rnnkit_completion rnnkit" in proc.stdout, proc.stderr
