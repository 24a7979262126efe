"""``rnnkit score --sys --ref --metric f1,acc,label_acc`` in-process: tag and label files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rnnkit_cli.main import app
from tests.helpers import run_main as run_in_process

runner = CliRunner()

REF = "B-a I-a O B-b\nO B-c\nO\n"
HYP = "B-a I-a O O\nO B-c\nB-d\n"  # gold 3 spans, found 3, correct 2; tags 5 of 7


@pytest.fixture
def files(tmp_path):
    (tmp_path / "ref.tags").write_text(REF)
    (tmp_path / "hyp.tags").write_text(HYP)
    (tmp_path / "ref.label").write_text("flight\nfare\nflight#fare\n")
    (tmp_path / "hyp.label").write_text("flight\nflight\nflight#fare\n")
    return tmp_path


def test_f1_and_accuracy_of_tag_files(files):
    args = ["score", "--sys", str(files / "hyp.tags"), "--ref", str(files / "ref.tags")]
    result = runner.invoke(app, [*args, "--metric", "f1,acc"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        " F1 = 66.67 (P 66.67, R 66.67; 3 gold spans, 3 found, 2 correct)",
        "Acc = 71.43 (5/7 tags)",
    ]


def test_json_and_stdin(files):
    args = ["score", "--sys", "-", "--ref", str(files / "ref.tags"), "--metric", "f1", "--json"]
    result = runner.invoke(app, args, input=HYP)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"name": "F1", "score": 66.67, "precision": 66.67, "recall": 66.67, "gold": 3,
         "found": 3, "correct": 2}
    ]  # fmt: skip


def test_label_accuracy_of_label_files(files):
    args = ["score", "--sys", str(files / "hyp.label"), "--ref", str(files / "ref.label")]
    result = runner.invoke(app, [*args, "--metric", "label_acc"])
    assert result.exit_code == 0, result.output
    assert result.output == "LabelAcc = 66.67 (2/3 lines)\n"


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    proc = run_in_process(*args, check=False)  # the real entry point, in-process
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metric", "f1,bleu"], "--metric mixes text metrics (bleu) and tagging metrics (f1)"),
        (["--metric", "f1", "--tokenize", "none"], "--tokenize applies to bleu, chrf and ter"),
        (["--metric", "acc", "--sentence-level"], "--sentence-level applies to bleu"),
        (["--metric", "f1", "--ref", "x"], "--metric f1 takes one --ref FILE, not 2"),
        (["--metric", "f11"], "unknown metric 'f11' (choose from bleu, chrf, ter, f1, acc"),
    ],
)
def test_misuse_is_one_line_and_exit_code_2(files, monkeypatch, capsys, extra, message):
    args = ["score", "--sys", str(files / "hyp.tags"), "--ref", str(files / "ref.tags"), *extra]
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err


def test_misaligned_tags_name_both_files_and_the_line(files, monkeypatch, capsys):
    (files / "short.tags").write_text("B-a I-a O B-b\nO\nO\n")
    args = ["score", "--sys", str(files / "short.tags"), "--ref", str(files / "ref.tags")]
    code, _, err = run_main(monkeypatch, capsys, *args, "--metric", "acc")
    assert code == 2
    assert f"{files / 'short.tags'}:2: 1 tags, {files / 'ref.tags'}:2 has 2" in err
