"""Elastic restarts: ``rnnkit train --nproc-per-node 2 --max-restarts 1`` (torch's elastic agent).

A worker killed with SIGKILL mid-training makes the agent stop the other and start both again;
they resume from ``checkpoint_last.pt`` (written every ``--save-interval-updates``) by
themselves and finish with the very parameters of an uninterrupted run (bitwise, on CPU: the
data order and every worker's RNG are restored). When the restarts are exhausted the launcher
says so on one line.
"""

from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace

import pytest
import torch

from rnnkit.training import distributed
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.loop import fit
from rnnkit_cli.launch import WorkerFailed, _outcome, without_nproc
from tests.e2e.test_ddp import command, data, weights
from tests.unit.test_training import make_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed"),
]
__all__ = ["data"]  # the fixture, shared with test_ddp
# 20 batches per worker and epoch: all 8 updates are mid-epoch; checkpoints at updates 3 and 6.
OPTS = {"batch_size": 3, "max_update": 8, "save_interval_updates": 3, "keep_interval_updates": 1}


def test_a_killed_worker_is_restarted_and_the_job_ends_as_if_uninterrupted(
    rnnkit_bin, data, tmp_path
):
    save = tmp_path / "elastic"
    cmd = [*command(rnnkit_bin, data / "lines", save, **OPTS), "--max-restarts", "1"]
    env = {**os.environ, "DDP_TASKS_KILL": "1:5"}  # rank 1 dies in update 5, first attempt only
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "restarting all 2 workers (restart 1 of --max-restarts 1)" in proc.stderr
    assert f"resumed from {save / 'checkpoint_last.pt'}: epoch 1, update 3\n" in proc.stderr
    # The interval checkpoints, pruned to the newest; the lock was free for the new rank 0.
    assert sorted(p.name for p in save.glob("checkpoint_*_*.pt")) == ["checkpoint_1_6.pt"]
    assert load_checkpoint(save / "checkpoint_1_6.pt")["progress"]["updates"] == 6
    straight = tmp_path / "straight"
    subprocess.run(command(rnnkit_bin, data / "lines", straight, **OPTS), check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    mine, theirs = weights(save), weights(straight)
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k


def test_save_interval_updates_writes_numbered_checkpoints_and_the_last(tmp_path):
    fit(make_run(tmp_path, "every2", max_update=7, save_interval_updates=2, threads=1))
    names = sorted(p.name for p in (tmp_path / "every2").glob("checkpoint_*_*.pt"))
    assert names == ["checkpoint_1_2.pt", "checkpoint_1_4.pt", "checkpoint_1_6.pt"]
    saved = load_checkpoint(tmp_path / "every2" / "checkpoint_1_4.pt")
    assert saved["progress"]["updates"] == 4 and saved["progress"]["iterator"] is not None
    assert load_checkpoint(tmp_path / "every2" / "checkpoint_last.pt")["progress"]["updates"] == 7
    fit(make_run(tmp_path, "keep1", max_update=7, save_interval_updates=2,
                 keep_interval_updates=1, threads=1))  # fmt: skip
    assert [p.name for p in (tmp_path / "keep1").glob("checkpoint_*_*.pt")] == ["checkpoint_1_6.pt"]


def _failure(exitcode: int, signal_name: str = "", **data) -> SimpleNamespace:
    return SimpleNamespace(exitcode=exitcode, pid=123, error_file_data=data, message="",
                           signal_name=lambda: signal_name)  # fmt: skip


def test_exhausted_restarts_are_reported_on_one_line():
    failed = SimpleNamespace(failures={1: _failure(-9, "SIGKILL")})
    out = _outcome(failed, 2, max_restarts=3)
    assert isinstance(out, WorkerFailed)
    assert (
        str(out)
        == "failed again after --max-restarts 3: worker 1 of 2 (pid 123) was killed by SIGKILL"
    )
    assert str(_outcome(failed, 2)).startswith("worker 1 of 2")


def test_the_workers_do_not_see_the_launcher_options():
    argv = ["train", "d", "--nproc-per-node", "2", "--max-restarts=1", "--lr", "1"]
    assert without_nproc(argv) == ["train", "d", "--lr", "1"]


def test_torchrun_restarts_with_a_shared_store_are_warned_of(monkeypatch, capsys):
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("RANK", "0")
    distributed._check_restartable()
    assert "set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in capsys.readouterr().err
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # as rnnkit's launcher sets it
    distributed._check_restartable()
    assert capsys.readouterr().err == ""
