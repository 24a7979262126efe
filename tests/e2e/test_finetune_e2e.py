"""``rnnkit train --finetune-from-model`` as a user runs it: fine-tune, run the same command again
(it resumes), and point it at a save dir that holds another run (one line, exit 2)."""

from __future__ import annotations

import pytest

from rnnkit.training.checkpoint import load_checkpoint
from tests.helpers import run_main
from tests.unit.test_training import make_char_data

pytestmark = pytest.mark.e2e

TRAIN = ["--arch", "rnn_lm", "--embed-dim", "8", "--hidden-size", "8", "--num-layers", "1",
         "--batch-size", "4", "--bptt", "6", "--device", "cpu", "--threads", "1"]  # fmt: skip


def test_finetune_then_the_same_command_resumes(tmp_path):
    data = make_char_data(tmp_path / "data")
    base = tmp_path / "base"
    run_main("train", str(data), *TRAIN, "--save-dir", str(base), "--max-epoch", "1")
    source = base / "checkpoint_last.pt"
    tune = ["train", str(data), *TRAIN, "--finetune-from-model", str(source), "--lr", "0.5"]
    ft = tmp_path / "ft"
    first = run_main(*tune, "--save-dir", str(ft), "--max-epoch", "1")
    assert f"fine-tuning from {source}" in first.stderr
    state = load_checkpoint(ft / "checkpoint_last.pt", resume=True)
    assert state["progress"]["epoch"] == 2 and state["started_from"]["how"] == "finetune"
    again = run_main(*tune, "--save-dir", str(ft), "--max-epoch", "2")
    assert "resumed from" in again.stderr and "fine-tuning from" not in again.stderr
    assert load_checkpoint(ft / "checkpoint_last.pt")["progress"]["epoch"] == 3
    refused = run_main(*tune, "--save-dir", str(base), "--max-epoch", "1", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"rnnkit: error: --finetune-from-model: {source} holds another run; resume it without "
        "--finetune-from-model, or use another --save-dir (or --reset to start over there)"
    )
