"""Two workers reading their blocks of streams from the memory map train bitwise the parameters
they trained with the whole split in memory (the benchmark switch ``RNNKIT_BENCH_LM_IN_RAM``)."""

from __future__ import annotations

import os

import pytest
import torch

from rnnkit.tasks.lm import IN_RAM_ENV
from rnnkit.training.checkpoint import load_checkpoint
from tests.e2e.test_preflight_e2e import TINY
from tests.helpers import run_rnnkit
from tests.unit.test_training import make_char_data

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed"),
]


def test_two_workers_train_the_same_parameters_as_in_memory(rnnkit_bin, tmp_path):
    data = make_char_data(tmp_path / "lm")
    weights = []
    for name, env in (("mapped", {}), ("in_ram", {IN_RAM_ENV: "1"})):
        save = tmp_path / name
        run_rnnkit(rnnkit_bin, "train", str(data), "--save-dir", str(save), *TINY,
                   "--batch-size", "4", "--bptt", "6", "--random-bptt", "--max-update", "5",
                   "--nproc-per-node", "2", "--ddp-timeout", "60", "--seed", "3",
                   env={**os.environ, **env})  # fmt: skip
        weights.append(load_checkpoint(save / "checkpoint_last.pt")["model_state"])
    for k, v in weights[0].items():
        assert torch.equal(v, weights[1][k]), k
