"""``rnnkit preprocess`` in-process: options reach the config; errors are one line, exit 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rnnkit_cli.main import app
from tests.helpers import run_main as run_in_process

runner = CliRunner()


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the real entry point (which turns RnnkitError into one line and exit code 2)."""
    proc = run_in_process(*args, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_help_lists_the_option_panels():
    result = runner.invoke(app, ["preprocess", "--help"])
    assert result.exit_code == 0
    for text in ("--trainpref", "--joined-dictionary", "--spm-model-type", "Dictionary", "Run"):
        assert text in result.output


def test_options_reach_the_library(tmp_path):
    (tmp_path / "t.txt").write_text("a b a\nc\n")
    (tmp_path / "v1.txt").write_text("a\n")
    (tmp_path / "v2.txt").write_text("b\n")
    dest = tmp_path / "out"
    args = ["preprocess", "--trainpref", str(tmp_path / "t.txt"), "--destdir", str(dest)]
    args += ["--validpref", f"{tmp_path / 'v1.txt'},{tmp_path / 'v2.txt'}", "--tokenizer", "char"]
    args += ["--threshold", "2", "--padding-factor", "1", "--workers", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((dest / "preprocess.json").read_text())
    opts = manifest["options"]
    assert (opts["tokenizer"], opts["threshold"], opts["workers"]) == ("char", 2, 2)
    assert set(manifest["splits"]) == {"train", "valid", "valid1"}
    # char tokens; b and c fall below the threshold; ties sort alphabetically (" " < "a")
    assert (dest / "dict.txt").read_text() == "  2\na 2\n"


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "t.de").write_text("a\nb\n")
    (tmp_path / "t.en").write_text("a\n")
    args = f"preprocess --task translation -s de -t en --trainpref {tmp_path / 't'}"
    args += f" --destdir {tmp_path / 'out'}"
    code, out, err = run_main(monkeypatch, capsys, *args.split())
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"rnnkit: error: {tmp_path / 't.de'}:2: ")
    assert not (tmp_path / "out").exists()


def test_unknown_task_and_tokenizer_list_the_valid_ones(tmp_path, monkeypatch, capsys):
    (tmp_path / "t.txt").write_text("a\n")
    base = ["preprocess", "--trainpref", str(tmp_path / "t.txt"), "--destdir", str(tmp_path / "o")]
    code, _, err = run_main(monkeypatch, capsys, *base, "--tokenizer", "wordpiece")
    assert code == 2 and "(valid: char, sentencepiece, space" in err
    code, _, err = run_main(monkeypatch, capsys, *base, "--task", "tag")
    assert code == 2 and "unknown task 'tag'; did you mean 'tagging'?" in err
    assert "(valid: classification, lm, tagging, translation)" in err


def test_models_lists_architectures():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and result.output.strip()
