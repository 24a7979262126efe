"""One run per save dir, and resume that honours the command line, through the installed
``rnnkit``: a second run is refused while the first holds the lock, a ``kill -9`` leaves no
stale lock, leftover temp files go, given options win over the checkpoint's (and what cannot
change is refused in one line), and a finished run has nothing to do."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest

from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.lock import SaveDirLock
from tests.e2e.test_lm_e2e import TEXT, TINY, run
from tests.helpers import run_main

pytestmark = pytest.mark.e2e

FIRST = ["--max-epoch", "1", "--optimizer", "adam", "--lr", "0.02", "--batch-size", "4",
         "--bptt", "16", *TINY, "--dropout", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def first(tmp_path_factory, rnnkit_bin):
    """A data dir and a save dir holding one finished epoch of ``FIRST``."""
    root = tmp_path_factory.mktemp("savedir")
    (root / "train.txt").write_text(TEXT)
    (root / "valid.txt").write_text(TEXT[:200])
    run(rnnkit_bin, "preprocess", "--task", "lm", "--tokenizer", "char", "--trainpref",
        str(root / "train.txt"), "--validpref", str(root / "valid.txt"), "--destdir",
        str(root / "data"))  # fmt: skip
    run(rnnkit_bin, "train", str(root / "data"), "--arch", "char_rnn", "--save-dir",
        str(root / "ckpt"), *FIRST)  # fmt: skip
    return root


def again(first, tmp_path, *options, check=True):
    """Run ``train`` once more on a copy of the first run's save dir, with ``options`` only
    (in-process: what is checked is one command's exit code, messages and files)."""
    save = tmp_path / "ckpt"
    if not save.exists():
        shutil.copytree(first / "ckpt", save)
    args = ("train", str(first / "data"), "--arch", "char_rnn", "--save-dir", str(save))
    return run_main(*args, *options, check=check), save


def test_a_second_run_is_refused_and_kill_9_leaves_no_stale_lock(first, rnnkit_bin, tmp_path):
    save = tmp_path / "busy"
    cmd = [rnnkit_bin, "train", str(first / "data"), "--arch", "char_rnn", "--save-dir",
           str(save), *TINY, "--batch-size", "1", "--bptt", "1"]  # fmt: skip
    holder = subprocess.Popen(
        [*cmd, "--max-epoch", "1000", "--log-interval", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stderr is not None
        for line in holder.stderr:  # wait until it trains
            if "epoch 1" in line:
                break
        second = run(rnnkit_bin, *cmd[1:], "--max-update", "1", check=False)
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and "rnnkit: error:" in second.stderr
        assert f"in use by another training run (pid {holder.pid} on {socket.gethostname()}" in (
            second.stderr
        )
    finally:
        holder.kill()  # SIGKILL: no handler runs, only the kernel lets go of the lock
        holder.communicate(timeout=60)
    with SaveDirLock(save) as lock:  # the dead holder's lock went with it
        assert lock.held


def test_a_finished_run_has_nothing_to_do_and_leftover_temp_files_go(first, rnnkit_bin, tmp_path):
    save = tmp_path / "ckpt"
    shutil.copytree(first / "ckpt", save)
    (save / ".checkpoint_last.pt.x8k2m1q0.tmp").write_bytes(b"\0" * 1000)  # a killed write
    (save / ".checkpoint_best.pt.p0w9e7r6.tmp").write_bytes(b"\0" * 10)
    log = (save / "train_log.jsonl").read_bytes()
    last = (save / "checkpoint_last.pt").read_bytes()
    proc, _ = again(first, tmp_path)
    assert "removed 2 leftover temporary file(s)" in proc.stderr
    assert not list(save.glob(".*.tmp"))
    assert "nothing left to do" in proc.stderr and "--max-epoch 1 reached" in proc.stderr
    assert (save / "train_log.jsonl").read_bytes() == log  # no training, no validation
    assert (save / "checkpoint_last.pt").read_bytes() == last


def test_a_new_lr_is_reported_and_used(first, rnnkit_bin, tmp_path):
    proc, save = again(first, tmp_path, "--lr", "0.005", "--max-epoch", "2",
                       "--log-interval", "1")  # fmt: skip
    assert "resume: --lr 0.02 -> 0.005" in proc.stderr.splitlines()
    assert "resume: --max-epoch 1 -> 2" in proc.stderr.splitlines()
    events = [json.loads(line) for line in (save / "train_log.jsonl").open()]
    trained = [e for e in events if e["event"] == "train" and e["epoch"] == 2]
    assert trained and all(e["lr"] == 0.005 for e in trained)
    cfg = load_checkpoint(save / "checkpoint_last.pt")["train_config"]
    assert (cfg["lr"], cfg["batch_size"], cfg["bptt"], cfg["optimizer"]) == (0.005, 4, 16, "adam")


def test_another_optimizer_needs_reset_optimizer(first, rnnkit_bin, tmp_path):
    proc, save = again(first, tmp_path, "--optimizer", "sgd", "--max-epoch", "2",
                       check=False)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--optimizer sgd differs from the adam" in proc.stderr
    assert "--reset-optimizer" in proc.stderr
    proc, _ = again(first, tmp_path, "--optimizer", "sgd", "--lr", "0.5",
                    "--reset-optimizer", "--max-epoch", "2")  # fmt: skip
    assert "resume: --optimizer adam -> sgd" in proc.stderr
    state = load_checkpoint(save / "checkpoint_last.pt")
    assert state["train_config"]["optimizer"] == "sgd" and state["progress"]["epoch"] == 3


def test_a_model_field_change_is_refused_naming_it(first, rnnkit_bin, tmp_path):
    proc, _ = again(first, tmp_path, "--hidden-size", "32", "--max-epoch", "2",
                    check=False)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--hidden-size 16 -> 32 would change the model" in proc.stderr
    assert "another --save-dir" in proc.stderr
