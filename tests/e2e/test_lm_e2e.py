"""preprocess → train → sample → score through the installed ``rnnkit`` command, and its errors."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from rnnkit.training.checkpoint import load_checkpoint
from tests.helpers import run_main, run_rnnkit

pytestmark = pytest.mark.e2e

TEXT = "the cat sat on the mat\nthe dog sat on the log\n" * 30
TINY = ["--embed-dim", "8", "--hidden-size", "16", "--num-layers", "1"]


run = run_rnnkit  # tests/helpers.py; other e2e modules import it from here too


@pytest.fixture(scope="module")
def trained(tmp_path_factory, rnnkit_bin):
    root = tmp_path_factory.mktemp("lm")
    (root / "train.txt").write_text(TEXT)
    (root / "valid.txt").write_text(TEXT[:200])
    run(
        rnnkit_bin,
        "preprocess",
        "--task",
        "lm",
        "--tokenizer",
        "char",
        "--trainpref",
        str(root / "train.txt"),
        "--validpref",
        str(root / "valid.txt"),
        "--destdir",
        str(root / "data"),
    )
    run(
        rnnkit_bin,
        "train",
        str(root / "data"),
        "--arch",
        "char_rnn",
        "--save-dir",
        str(root / "ckpt"),
        "--max-epoch",
        "3",
        "--optimizer",
        "adam",
        "--lr",
        "0.02",
        "--batch-size",
        "4",
        "--bptt",
        "16",
        *TINY,
        "--dropout",
        "0",
    )
    return root


def test_train_writes_checkpoints_and_jsonl(trained):
    names = {p.name for p in (trained / "ckpt").iterdir()}
    assert {
        "checkpoint_last.pt",
        "checkpoint_best.pt",
        "checkpoint3.pt",
        "train_log.jsonl",
    } <= names
    events = [json.loads(line) for line in (trained / "ckpt" / "train_log.jsonl").open()]
    valid = [e for e in events if e["event"] == "valid"]
    assert [e["epoch"] for e in valid] == [1, 2, 3]
    assert valid[-1]["loss"] < valid[0]["loss"]


def test_sample_is_deterministic_and_streams_the_prime(trained, rnnkit_bin):
    ckpt = str(trained / "ckpt" / "checkpoint_best.pt")
    args = ("sample", "--path", ckpt, "--prime", "the ", "--length", "40", "--seed", "7")
    a, b = run(rnnkit_bin, *args).stdout, run(rnnkit_bin, *args).stdout
    assert a == b and a.startswith("the ") and len(a) > 20
    c = run(rnnkit_bin, *args[:-1], "8").stdout
    assert c != a


def test_score_perplexity_and_raw_lines(trained, rnnkit_bin):
    ckpt = str(trained / "ckpt" / "checkpoint_best.pt")
    out = run(
        rnnkit_bin, "score", str(trained / "data"), "--path", ckpt, "--subset", "valid", "--json"
    )
    result = json.loads(out.stdout)
    assert result["ppl"] > 1 and result["bpc"] == pytest.approx(result["loss"] / 0.6931471805599453)
    lines = run(
        rnnkit_bin,
        "score",
        "--path",
        ckpt,
        "--input",
        "-",
        stdin="the cat sat on the mat\nzzq xqz qqz\n",
    ).stdout.splitlines()
    seen, unseen = (json.loads(x) for x in lines)
    assert seen["logprob"] > unseen["logprob"]  # a line like the training text is more likely


def test_unknown_arch_lists_valid_ones(trained):
    p = run_main(  # in-process: one command's exit code and error line
        "train",
        str(trained / "data"),
        "--arch",
        "lstm_lm_zaremba_smal",
        "--save-dir",
        str(trained / "x"),
        check=False,
    )
    assert p.returncode == 2
    assert "did you mean 'lstm_lm_zaremba_small'" in p.stderr and "char_rnn" in p.stderr


def test_unknown_model_field_suggests(trained):
    p = run_main(
        "train",
        str(trained / "data"),
        "--arch",
        "char_rnn",
        "--save-dir",
        str(trained / "x"),
        "--hiden-size",
        "4",
        check=False,
    )
    assert p.returncode == 2 and "hidden-size" in p.stderr


def test_bad_checkpoints_fail_with_one_line(trained, rnnkit_bin, tmp_path):
    good = (trained / "ckpt" / "checkpoint_best.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "foreign.pt").write_bytes(b"not a checkpoint at all")
    for name in ("trunc.pt", "foreign.pt", "missing.pt"):
        p = run(rnnkit_bin, "sample", "--path", str(tmp_path / name), "--length", "3", check=False)
        assert p.returncode == 2, p.stderr
        assert p.stderr.count("\n") == 1 and "rnnkit: error:" in p.stderr


def test_data_dir_of_another_task_is_refused(trained, tmp_path):
    src = tmp_path / "atis"
    src.mkdir()
    (src / "seq.in").write_text("i want to fly\nto boston\n")
    (src / "seq.out").write_text("O O O O\nO B-city\n")
    data = tmp_path / "tagdata"
    run_main(  # in-process: each command's exit code and error line
        "preprocess",
        "--task",
        "tagging",
        "--trainpref",
        str(src),
        "--destdir",
        str(data),
    )
    ckpt = str(trained / "ckpt" / "checkpoint_best.pt")
    p = run_main("score", str(data), "--path", ckpt, check=False)
    assert p.returncode == 2 and "data of task 'tagging', expected 'lm'" in p.stderr
    p = run_main("train", str(data), "--arch", "char_rnn", "--save-dir", str(tmp_path / "x"),
                 check=False)  # fmt: skip
    assert p.returncode == 2 and "this data is for task 'tagging'" in p.stderr, p.stderr


def test_sigterm_saves_and_the_next_run_resumes(trained, rnnkit_bin, tmp_path):
    save = tmp_path / "ckpt"
    # One long epoch (batch 1, bptt 1: one update per character) so the signal lands mid-epoch.
    cmd = [
        rnnkit_bin,
        "train",
        str(trained / "data"),
        "--arch",
        "char_rnn",
        "--save-dir",
        str(save),
        "--max-epoch",
        "1",
        "--batch-size",
        "1",
        "--bptt",
        "1",
        *TINY,
    ]
    proc = subprocess.Popen([*cmd, "--log-interval", "1"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until updates are running
        if "epoch 1" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted by signal 15" in err
    stopped_at = load_checkpoint(save / "checkpoint_last.pt")["progress"]["updates"]
    assert stopped_at > 0
    again = run(rnnkit_bin, *cmd[1:])
    assert (
        f"resumed from {save / 'checkpoint_last.pt'}: epoch 1, update {stopped_at}" in again.stderr
    )
    assert load_checkpoint(save / "checkpoint_last.pt")["progress"]["epoch"] == 2


def test_help_of_every_command_has_an_example():
    for cmd in ("preprocess", "train", "sample", "score", "models"):
        out = run_main(cmd, "--help").stdout
        assert "Example" in out, cmd
