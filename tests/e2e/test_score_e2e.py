"""The installed ``rnnkit score --sys`` against the ``sacrebleu`` command on the same files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path  # tests/ is on sys.path (rootdir conftest, no __init__)

from tests.helpers import run_rnnkit

pytestmark = pytest.mark.e2e
SACREBLEU = Path(sys.executable).parent / "sacrebleu"
HYP = "The cat sat on the mat.\nhello world\n\na b c d e\n"
REF1 = "the cat sat on a mat .\nHello there world\nempty\na b c d e f\n"
REF2 = "A cat sat on the mat.\nhello world !\nnothing\na b c d\n"


def run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_rnnkit(*cmd, stdin=stdin, check=False, timeout=120)


def sacrebleu(*args: str) -> str:
    if not SACREBLEU.exists():
        pytest.skip(f"the sacrebleu command is not installed beside {sys.executable}")
    r = run([str(SACREBLEU), *args])
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    out = {}
    for name, text in {"h": HYP, "r1": REF1, "r2": REF2}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        out[name] = str(tmp_path / name)
    return out


def test_text_and_json_equal_the_sacrebleu_command(rnnkit_bin, files):
    h, r1, r2 = files["h"], files["r1"], files["r2"]
    ours = run([rnnkit_bin, "score", "--sys", h, "--ref", r1, "--metric", "bleu,chrf,ter"])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == sacrebleu(r1, "-i", h, "-m", "bleu", "chrf", "ter", "-f", "text")
    two = [rnnkit_bin, "score", "--sys", h, "--ref", r1, "--ref", r2, "--metric", "ter,bleu,chrf"]
    ours = run([*two, "--json"])
    assert ours.stdout == sacrebleu(r1, r2, "-i", h, "-m", "bleu", "chrf", "ter")  # json there
    assert [m["name"] for m in json.loads(ours.stdout)] == ["BLEU", "chrF2", "TER"]


def test_options_stdin_and_sentence_level_equal_sacrebleu(rnnkit_bin, files):
    h, r1, r2 = files["h"], files["r1"], files["r2"]
    opts = ["--tokenize", "char", "--lowercase"]
    ours = run([rnnkit_bin, "score", "--sys", "-", "--ref", r1, *opts], stdin=HYP)
    assert ours.stdout == sacrebleu(r1, "-i", h, "-tok", "char", "-lc", "-f", "text")
    for metric in ("bleu", "chrf", "ter"):
        cmd = ["score", "--sys", h, "--ref", r1, "--ref", r2, "--metric", metric]
        ours = run([rnnkit_bin, *cmd, "--sentence-level"])
        assert ours.stdout == sacrebleu(r1, r2, "-i", h, "-m", metric, "-sl"), metric
    ours = run([rnnkit_bin, "score", "--sys", h, "--ref", r1, "--sentence-level", "--json"])
    rows = [json.loads(line) for line in ours.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3, 4]


def test_mismatch_missing_and_mixed_modes_are_one_line_errors(rnnkit_bin, files, tmp_path):
    short = tmp_path / "short"
    short.write_text("one line\n", encoding="utf-8")
    cases = {
        "line counts differ": ["--sys", files["h"], "--ref", files["r1"], "--ref", str(short)],
        "no such file": ["--sys", files["h"], "--ref", str(tmp_path / "missing")],
        "drop --path": ["--sys", files["h"], "--ref", files["r1"], "--path", "x.pt"],
    }
    errors = {}
    for message, args in cases.items():
        r = run([rnnkit_bin, "score", *args])
        assert r.returncode == 2 and r.stdout == "", message
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
        errors[message] = r.stderr
    assert f"{files['h']} has 4 lines, {short} has 1" in errors["line counts differ"]


@pytest.mark.shared_data
def test_multi30k_slices_equal_sacrebleu(rnnkit_bin, tmp_path):
    val = shared_path("multi30k", "val.de")
    test = shared_path("multi30k", "test_2016_flickr.de")
    slices = {}
    for src in (val, test):
        with open(src, "rb") as f:
            head = b"".join(line for _, line in zip(range(200), f, strict=False))
        slices[src.name] = tmp_path / src.name
        slices[src.name].write_bytes(head)
    hyp = str(slices["val.de"])
    for ref in (hyp, str(slices["test_2016_flickr.de"])):
        ours = run([rnnkit_bin, "score", "--sys", hyp, "--ref", ref, "--metric", "bleu,chrf,ter"])
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == sacrebleu(ref, "-i", hyp, "-m", "bleu", "chrf", "ter", "-f", "text")
