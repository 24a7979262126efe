"""``--help`` shows help texts as written and option names whole: ``<unk>``, ``</s>`` and
``<pad>`` survive the Markdown rendering, a ``no_*`` field is ``--no-x/--x`` (never
``--no-no-x``), and at 80 columns no option name is cut."""

from __future__ import annotations

import importlib.util
import re

import pytest
from typer.testing import CliRunner

import rnnkit_cli.train as train_cli
from rnnkit_cli.helpformat import escape_markup
from rnnkit_cli.main import COMMANDS, app, load_command

runner = CliRunner()
TAG = re.compile(r"</?[a-z]+>")


def help_of(*args: str, columns: int = 200) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def flat(text: str) -> str:
    """Rendered help with the panel borders and line breaks taken out."""
    return " ".join(w for w in text.replace("│", " ").split())


def test_escape_markup_keeps_code_spans_and_is_idempotent():
    assert (
        escape_markup("Subtracted from <unk>'s log-prob.") == "Subtracted from \\<unk>'s log-prob."
    )
    assert escape_markup("ends in `</s>`; a < b") == "ends in `</s>`; a < b"
    once = escape_markup("<pad> and </s>")
    assert escape_markup(once) == once == "\\<pad> and \\</s>"


@pytest.mark.parametrize(
    "args",
    [("generate",), ("score",), ("preprocess",), ("train",), ("train", "--arch", "atis_bilstm")],
)
def test_tags_in_help_texts_are_shown(args):
    text = flat(help_of(*args))
    command = load_command(args[0])
    sources = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    tags = {t for s in sources for t in TAG.findall(s)}
    for tag in tags:
        assert tag in text, f"{tag} vanished from rnnkit {' '.join(args)} --help"
    if args[0] == "generate":
        assert "Subtracted from <unk>'s log-prob." in text and "</s> excluded" in text
    if "atis_bilstm" in args:  # model options, added at parse time
        assert "replace training words by <unk>" in text
    assert "\\<" not in text


def test_no_flag_renders_as_no_no():
    for name, (module, _) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            assert "--no-no-" not in help_of(name), name
    text = help_of("train")
    assert "--no-epoch-checkpoints" in text and "--epoch-checkpoints" in text
    assert "--no-save-optimizer-state" in text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [((), False), (("--no-epoch-checkpoints",), True), (("--epoch-checkpoints",), False)],
)
def test_no_flag_resolves_as_before(monkeypatch, tmp_path, flags, expected):
    seen = {}

    def build_run(cfg, task, arch, layers, save_dir, given):
        seen["cfg"] = cfg

    monkeypatch.setattr(train_cli, "load_task", lambda data, **kw: object())
    monkeypatch.setattr(train_cli, "build_run", build_run)
    monkeypatch.setattr(train_cli, "fit", lambda run: None)
    args = ["train", str(tmp_path), "--arch", "char_rnn", "--save-dir", str(tmp_path), *flags]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["cfg"].no_epoch_checkpoints is expected


@pytest.mark.parametrize("args", [("train",), ("train", "--arch", "atis_bilstm"), ("generate",)])
def test_option_names_are_whole_at_80_columns(args):
    text = help_of(*args, columns=80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    words = set(re.findall(r"--?[\w-]+", text))
    params = load_command(args[0]).params
    for name in [o for p in params if not p.hidden for o in (*p.opts, *p.secondary_opts)]:
        if name.startswith("-"):
            assert name in words, f"{name} is cut in rnnkit {' '.join(args)} --help"
