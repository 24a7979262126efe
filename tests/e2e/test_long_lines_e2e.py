"""Long and odd lines through the installed ``rnnkit``: a 200,000-character line scored by a tiny
language model and tagged by a tiny tagger (truncated or skipped, with a warning naming it, one
output line per input line), ``score --input -`` answering line by line, byte order marks and NUL
bytes, ``--sys``/``--ref`` read from pipes, and ``--threads`` on ``score`` and ``sample``.

The tiny models are trained in-process with the unit tests' helpers (a second each).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading

import pytest

import rnnkit
from rnnkit.dictionary import Dictionary
from rnnkit.training.loop import fit
from tests.e2e.test_lm_e2e import run
from tests.unit.test_tagging import make_data
from tests.unit.test_tagging import make_run as make_tagger_run
from tests.unit.test_training import make_run as make_lm_run

pytestmark = pytest.mark.e2e
LONG = "ab" * 100_000  # 200,000 characters: 200,000 tokens for the char-level lm
WORDS = " ".join(["a"] * 100_000)  # 199,999 characters: 100,000 tokens for the tagger
BOM = "\ufeff"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Checkpoints of a tiny char-level lm and a tiny tagger with a label head (one epoch)."""
    root = tmp_path_factory.mktemp("models")
    fit(make_lm_run(root / "lm", max_epoch=1))
    fit(make_tagger_run(make_data(root / "tag"), root / "tagger", model={"label-head": True},
                        max_epoch=1))  # fmt: skip
    return {
        "lm": str(root / "lm" / "run" / "checkpoint_last.pt"),
        "tagger": str(root / "tagger" / "checkpoint_last.pt"),
    }


def answers_line_by_line(cmd: list[str], lines: list[str]) -> list[str]:
    """Run ``cmd`` with a pipe as stdin; write ``lines`` one at a time, and require an answer line
    on stdout to each before the next is written. Returns the answers."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    try:
        for line in lines:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready, f"no answer to {line!r} while stdin is still open"
            answers.append(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    return answers


def test_lm_scores_a_long_line_truncated_or_skipped(models, rnnkit_bin, tmp_path):
    f = tmp_path / "long.txt"
    f.write_text(f"abc\n{LONG}\n\ncab\n")
    out = run(rnnkit_bin, "score", "--path", models["lm"], "--input", str(f), "--threads", "1")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["tokens"] for r in rows] == [4, 1024, 1, 4]
    assert f"{f}:2: 200001 tokens exceed --max-positions 1024; truncated" in out.stderr
    out = run(rnnkit_bin, "score", "--path", models["lm"], "--input", str(f), "--max-positions",
              "4", "--skip-invalid-size-inputs")  # fmt: skip
    assert out.stdout.splitlines()[1:] == ["null", json.dumps(rows[2]), json.dumps(rows[3])]
    assert f"{f}:2: 200001 tokens exceed --max-positions 4; skipped" in out.stderr


def test_tagger_tags_a_long_line_truncated_or_skipped(models, rnnkit_bin, tmp_path):
    f = tmp_path / "long.in"
    f.write_text(f"a b c\n{WORDS}\nd\n")
    out = run(rnnkit_bin, "generate", "--path", models["tagger"], "-i", str(f), "--threads", "1")
    assert [len(line.split()) for line in out.stdout.split("\n")] == [3, 1024, 1, 0]
    assert f"{f}:2: 100000 tokens exceed --max-positions 1024; truncated" in out.stderr
    out = run(rnnkit_bin, "generate", "--path", models["tagger"], "-i", str(f), "--print-label",
              "--max-positions", "2", "--skip-invalid-size-inputs")  # fmt: skip
    lines = out.stdout.split("\n")
    assert len(lines) == 4 and lines[:2] == ["", ""] and lines[2].count("\t") == 1
    assert f"{f}:1: 3 tokens exceed --max-positions 2; skipped" in out.stderr


def test_score_input_answers_each_line_before_the_next_is_written(models, rnnkit_bin):
    cmd = [rnnkit_bin, "score", "--path", models["lm"], "--input", "-", "--buffer-size", "1",
           "--threads", "1"]  # fmt: skip
    answers = answers_line_by_line(cmd, ["abc", "", "b"])
    assert [json.loads(a)["tokens"] for a in answers] == [4, 1, 2]


def test_bom_nul_and_invalid_utf8_in_raw_input_are_reported(models, rnnkit_bin, tmp_path):
    f = tmp_path / "odd.txt"
    f.write_bytes(b"\xef\xbb\xbfabc\nab\x00c\n\xffab\n")
    out = run(rnnkit_bin, "score", "--path", models["lm"], "--input", str(f))
    assert [json.loads(line)["tokens"] for line in out.stdout.splitlines()] == [4, 5, 4]
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 3, out.stderr
    assert f"{f}: starts with a UTF-8 byte order mark; dropped" in warnings[0]
    assert f"{f}:2: NUL byte at byte 2 of the line" in warnings[1]
    assert f"{f}:3: invalid UTF-8" in warnings[2]
    out = run(rnnkit_bin, "generate", "--path", models["tagger"], "-i", "-", "--print-label",
              stdin=f"{BOM}a b\n")  # fmt: skip
    plain = rnnkit.load(models["tagger"], device="cpu").tag(["a b"])[0]
    assert out.stdout == f"{plain['label']}\t{' '.join(plain['tags'])}\n"
    assert plain["tokens"] == ["a", "b"]
    assert "<stdin>: starts with a UTF-8 byte order mark; dropped" in out.stderr


def test_preprocess_drops_a_bom_once(rnnkit_bin, tmp_path):
    train = tmp_path / "train.txt"
    train.write_text(BOM + "hello world\n" + "hello there\n" * 9)
    dest = tmp_path / "data"
    out = run(rnnkit_bin, "preprocess", "--task", "lm", "--trainpref", str(train), "--destdir",
              str(dest), "--workers", "2")  # fmt: skip
    assert out.stderr.count("byte order mark") == 1
    assert f"{train}: starts with a UTF-8 byte order mark; dropped" in out.stderr
    words = Dictionary.load(dest / "dict.txt").symbols
    assert "hello" in words and not [w for w in words if w.startswith(BOM)]


def test_sys_and_ref_can_be_pipes(rnnkit_bin, tmp_path):
    hyp = tmp_path / "hyp"
    hyp.write_text("the cat sat\nhello world\n")
    fds = []
    for _ in range(2):  # --sys and --ref, as `<(cat hyp)` would give them
        read, write = os.pipe()
        fds.append(read)
        threading.Thread(target=_feed, args=(write, hyp.read_bytes())).start()
    try:
        proc = subprocess.run([rnnkit_bin, "score", "--sys", f"/dev/fd/{fds[0]}", "--ref",
                               f"/dev/fd/{fds[1]}"], capture_output=True, text=True,
                              pass_fds=fds, timeout=300)  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)
    assert proc.returncode == 0, proc.stderr
    assert "100.0/100.0/100.0" in proc.stdout and "hyp_len = 5 ref_len = 5" in proc.stdout


def _feed(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as w:
        w.write(data)


def test_sample_takes_threads(models, rnnkit_bin):
    args = ("sample", "--path", models["lm"], "--prime", "ab", "--length", "5", "--seed", "1")
    assert run(rnnkit_bin, *args, "--threads", "1").stdout.startswith("ab")
    bad = run(rnnkit_bin, *args, "--threads", "-1", check=False)
    assert bad.returncode == 2 and "--threads must be 0" in bad.stderr
