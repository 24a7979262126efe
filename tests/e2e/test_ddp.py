"""Data-parallel training on CPU: 2 workers (gloo), started by plain torchrun (the equivalence
tests) or by ``rnnkit train --nproc-per-node 2`` (the failure tests).

Two workers must make the updates one worker makes with the whole batch (lm: the streams split
between them) or with ``--update-freq 2`` (a batch-list task from ``tests/fixtures/ddp_tasks``);
a worker that is killed or raises must end the job quickly with a non-zero code, leaving a
loadable ``checkpoint_last.pt`` from which the same command resumes exactly; Ctrl-C must save
and stop every worker.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rnnkit.config import resolve
from rnnkit.registry import load_plugins, scoped_registries
from rnnkit.tasks import load_task
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit
from tests.helpers import run_rnnkit

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed"),
]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = {"embed_dim": 8, "hidden_size": 8, "num_layers": 1}
# Options shared by both sides of every comparison (dropout 0: masks differ between layouts).
COMMON = {"seed": 3, "bptt": 8, "optimizer": "sgd", "lr": 1.0, "clip_norm": 0.5}


def _text() -> str:
    """Lines of random words (not periodic, so the parallel streams differ)."""
    rng = random.Random(0)
    words = lambda: " ".join(  # noqa: E731
        "".join(rng.choice("abcdefg") for _ in range(rng.randint(1, 5)))
        for _ in range(rng.randint(2, 7))
    )
    return "".join(words() + "\n" for _ in range(120))


@pytest.fixture(scope="module")
def data(tmp_path_factory, rnnkit_bin) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("ddp")
    (root / "train.txt").write_text(_text())
    (root / "valid.txt").write_text(_text()[:300])
    run_rnnkit(rnnkit_bin, "preprocess", "--task", "lm", "--tokenizer", "char", "--trainpref",
               str(root / "train.txt"), "--validpref", str(root / "valid.txt"), "--destdir",
               str(root / "lm"), timeout=120)  # fmt: skip
    shutil.copytree(root / "lm", root / "lines")  # the same files, read by the batch-list task
    (root / "lines" / "preprocess.json").write_text(json.dumps({"task": "ddp_lines"}))
    # For the one-worker references in this process; undone after this module, so the
    # fixture task does not show up in other modules' registry listings.
    with scoped_registries():
        load_plugins([str(FIXTURES / "ddp_tasks")])
        yield root


def flags(options: dict) -> list[str]:
    out = []
    for k, v in options.items():
        out += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return out


def command(rnnkit_bin: str, data: Path, save: Path, **options) -> list[str]:
    """``rnnkit train`` with 2 workers; ``options`` are TrainConfig fields."""
    return [rnnkit_bin, "train", str(data), "--arch", "rnn_lm", "--save-dir", str(save),
            "--nproc-per-node", "2", "--user-dir", str(FIXTURES / "ddp_tasks"),
            *flags({**COMMON, "ddp_timeout": 60, **options}), *flags(MODEL)]  # fmt: skip


def torchrun2(data: Path, save: Path, **options) -> subprocess.CompletedProcess:
    """The same through plain torchrun (the several-machines command, on one machine)."""
    rnnkit_args = command("rnnkit", data, save, **options)[1:]
    rnnkit_args.remove("--nproc-per-node")
    rnnkit_args.remove("2")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                "2", "-m", "rnnkit_cli"]  # fmt: skip
    return run_rnnkit(*launcher, *rnnkit_args)


def train1(data: Path, save: Path, **options) -> dict[str, torch.Tensor]:
    """The same run in this process, one worker; returns its final weights."""
    run = build_run(resolve(TrainConfig, COMMON, options), load_task(data), "rnn_lm", [MODEL], save)
    fit(run)
    return run.model.state_dict()


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()  # no DDP "module." prefix in checkpoints
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def weights(save: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(save / "checkpoint_last.pt")["model_state"]


def test_two_workers_make_the_update_of_one_with_the_whole_batch(data, tmp_path):
    lm, opts = data / "lm", {"batch_size": 4, "random_bptt": True}
    torchrun2(lm, tmp_path / "ddp", max_update=1, **opts)
    assert_same_weights(
        weights(tmp_path / "ddp"), train1(lm, tmp_path / "one", max_update=1, **opts)
    )
    # Another world size: one worker resumes what two wrote (mid-epoch, carried state of all rows).
    resumed = train1(lm, tmp_path / "ddp", max_update=6, **opts)
    assert_same_weights(resumed, train1(lm, tmp_path / "one6", max_update=6, **opts))


def test_two_workers_equal_one_with_update_freq_2(data, tmp_path):
    lines, opts = data / "lines", {"batch_size": 3, "optimizer": "adam", "lr": 0.01}
    torchrun2(lines, tmp_path / "ddp", max_update=4, **opts)
    one = train1(lines, tmp_path / "one", max_update=4, update_freq=2, **opts)
    assert_same_weights(weights(tmp_path / "ddp"), one)


def _worker(agent: int, rank: int) -> int:
    """The pid of torchrun worker ``rank`` among the children of ``agent``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if ppid == agent and f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no worker of rank {rank} under pid {agent}")


def _start(cmd: list[str], save: Path, log: Path, env=None) -> tuple[subprocess.Popen, int]:
    """Start ``cmd``; wait until its first ``checkpoint_last.pt``; returns it and its updates."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)
    deadline = time.monotonic() + 120
    while not (save / "checkpoint_last.pt").exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    return proc, load_checkpoint(save / "checkpoint_last.pt")["progress"]["updates"]


def _wait(proc: subprocess.Popen) -> float:
    t0 = time.monotonic()
    proc.wait(timeout=120)
    return time.monotonic() - t0


def test_a_killed_worker_ends_the_job_and_the_same_command_resumes(rnnkit_bin, data, tmp_path):
    save, log = tmp_path / "run", tmp_path / "stderr.txt"
    opts = {"batch_size": 4, "random_bptt": True, "max_update": 150}
    # Checkpoints every 15 updates, mid-epoch: the resume below needs the gathered carry.
    cmd = command(rnnkit_bin, data / "lm", save, validate_interval_updates=15, **opts)
    proc, first = _start(cmd, save, log)
    os.kill(_worker(proc.pid, 1), signal.SIGKILL)
    seconds = _wait(proc)
    err = log.read_text()
    assert proc.returncode != 0, err
    assert seconds < 15, f"took {seconds:.1f} s to stop"  # gloo sees the closed socket at once
    assert "rank 0 of 2: lost the other workers" in err and "is intact" in err
    assert "SIGKILL" in err  # torchrun's summary names the root cause
    saved = load_checkpoint(save / "checkpoint_last.pt")["progress"]["updates"]
    assert first <= saved < 150
    again = run_rnnkit(*cmd)
    assert f"resumed from {save / 'checkpoint_last.pt'}: epoch " in again.stderr
    assert f", update {saved}\n" in again.stderr
    straight = train1(data / "lm", tmp_path / "one", **opts)
    for k, v in weights(save).items():  # 150 updates: rounding differences may grow a little
        torch.testing.assert_close(v, straight[k], rtol=0, atol=1e-4, msg=k)


def test_a_worker_that_raises_ends_the_job(rnnkit_bin, data, tmp_path):
    save, log = tmp_path / "run", tmp_path / "stderr.txt"
    cmd = command(rnnkit_bin, data / "lines", save, batch_size=3, max_epoch=1000)
    env = {**os.environ, "DDP_TASKS_RAISE": "1:25"}  # rank 1, in epoch 2 (20 batches each)
    proc, _ = _start(cmd, save, log, env=env)
    assert _wait(proc) < 15 and proc.returncode != 0
    err = log.read_text()
    assert "RuntimeError: injected failure in loss call 25" in err
    assert "rank 0 of 2: lost the other workers" in err
    load_checkpoint(save / "checkpoint_last.pt")


def test_ctrl_c_saves_and_stops_every_worker(rnnkit_bin, data, tmp_path):
    save, log = tmp_path / "run", tmp_path / "stderr.txt"
    cmd = command(rnnkit_bin, data / "lm", save, batch_size=4, max_epoch=1000)
    proc, first = _start(cmd, save, log)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends torchrun
    seconds = _wait(proc)
    err = log.read_text()
    assert seconds < 15 and proc.returncode != 0, f"{seconds:.1f} s, exit {proc.returncode}\n{err}"
    assert err.count("interrupted by signal 2; progress saved") == 2, err  # both workers
    assert load_checkpoint(save / "checkpoint_last.pt")["progress"]["updates"] > first
