"""The README's several-machines command, run as two torchrun "nodes" on this machine.

Each node is its own ``torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d`` agent with
one gloo worker, both meeting at one loopback rendezvous endpoint. c10d numbers the nodes by
their address (``--local-addr``; ``--node-rank`` is only for the static backend), so the node
on 127.0.0.1 is rank 0: only it writes (and creates) its ``--save-dir``, and on resume it
reads the checkpoint there and hands it to the other node, whose ``--save-dir`` never exists.
Two workers must make the updates of one process with ``--update-freq 2`` (translation, also
resumed from and by one process at odd positions of the global batch order) or with the same
batch (lm, ``--update-freq 2`` on both sides: the streams are split between the workers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.config import resolve
from rnnkit.tasks import load_task
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit
from tests.e2e.test_ddp import COMMON, MODEL, assert_same_weights, data, flags, train1, weights
from tests.unit.test_translation_task import TINY, make_pairs

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed"),
]
__all__ = ["data"]  # the fixture, shared with test_ddp
NODES = ("127.0.0.1", "127.0.0.2")  # c10d sorts the nodes by address: the first is rank 0
MT = {"batch_size": 8, "optimizer": "adam", "lr": 0.01, "seed": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(train_args: list[str], saves: tuple[Path, Path], tmp: Path) -> list[str]:
    """``torchrun ... -m rnnkit_cli train TRAIN_ARGS --save-dir SAVE`` as two concurrent nodes;
    returns their stderr."""
    endpoint, logs, procs = f"127.0.0.1:{_free_port()}", [], []
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}  # loopback only
    for node, (addr, save) in enumerate(zip(NODES, saves, strict=True)):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
               "--rdzv-id", "job", "--local-addr", addr, "-m", "rnnkit_cli", "train",
               *train_args, "--save-dir", str(save), "--threads", "1"]  # fmt: skip
        logs.append(tmp / f"node{node}.txt")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=logs[-1].open("w"),
                                      env=env))  # fmt: skip
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    errs = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n".join(errs)
    return errs


def test_two_nodes_train_lm_like_one_process(data, tmp_path):
    opts = {"batch_size": 4, "update_freq": 2, "max_update": 3}
    args = [str(data / "lm"), "--arch", "rnn_lm", *flags({**COMMON, **opts}), *flags(MODEL)]
    saves = (tmp_path / "node0", tmp_path / "node1")
    two_nodes(args, saves, tmp_path)
    assert not saves[1].exists()  # only rank 0 writes
    assert_same_weights(weights(saves[0]), train1(data / "lm", tmp_path / "one", **opts))


def _translation_in_one_process(data: Path, save: Path, **options) -> dict[str, torch.Tensor]:
    cfg = resolve(TrainConfig, {**MT, "log_interval": 1e9, **options})
    run = build_run(cfg, load_task(data), "attention_seq2seq", [TINY], save)
    fit(run)
    return run.model.state_dict()


def test_two_nodes_resume_translation_from_rank_0_under_another_world_size(tmp_path):
    data = make_pairs(tmp_path)
    saves = (tmp_path / "node0", tmp_path / "node1")
    # One process trains global batch 0, so the two nodes resume at an odd position (1).
    _translation_in_one_process(data, saves[0], max_update=1)
    args = [str(data), "--arch", "attention_seq2seq", *flags({**MT, **TINY}), "--max-update", "3"]
    errs = two_nodes(args, saves, tmp_path)  # batches 1+2, then 3+4
    # Rank 0 read its save dir and sent the checkpoint to the other node, which wrote nothing.
    assert f"resumed from {saves[0] / 'checkpoint_last.pt'}: epoch 1, update 1\n" in errs[0]
    assert not saves[1].exists()
    last = _translation_in_one_process(data, saves[0], max_update=5)  # batches 5, then 6
    # One process throughout, with --update-freq 2 where the two nodes trained.
    one = tmp_path / "one"
    _translation_in_one_process(data, one, max_update=1)
    _translation_in_one_process(data, one, update_freq=2, max_update=3)
    assert_same_weights(weights(saves[0]), _translation_in_one_process(data, one, max_update=5))
    assert_same_weights(last, weights(saves[0]))
