"""Mistakes found before any work, through the installed ``rnnkit``: one ``rnnkit: error:``
line and exit 2, from ``train`` (also with ``--nproc-per-node``) and ``sample``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnkit.training.run import save
from tests.e2e.test_lm_e2e import run
from tests.helpers import run_main
from tests.unit.test_training import make_char_data, make_run

pytestmark = pytest.mark.e2e

TINY = ["--arch", "rnn_lm", "--embed-dim", "8", "--hidden-size", "8", "--num-layers", "1"]


def error_line(proc) -> str:
    """The one line a refused command prints; asserts there is nothing else."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    return make_char_data(tmp_path_factory.mktemp("preflight") / "lm")


def test_a_missing_valid_split_is_refused_before_the_first_epoch(lm, tmp_path):
    save_dir = tmp_path / "run"
    proc = run_main("train", str(lm), "--save-dir", str(save_dir), *TINY, "--batch-size",
                    "4", "--max-epoch", "1", "--valid-subset", "dev", check=False)  # fmt: skip
    line = error_line(proc)
    assert line == (
        f"rnnkit: error: --valid-subset: no 'dev' split in {lm} (dev.bin and dev.idx not found; "
        "splits there: train, valid)"
    )
    assert not (save_dir / "train_log.jsonl").exists()  # no epoch was trained and lost
    assert not (save_dir / "checkpoint_last.pt").exists()


def test_bad_sample_options_are_one_line_before_the_model_loads(tmp_path):
    run_ = make_run(tmp_path, max_update=1)
    run_.save_dir.mkdir(parents=True, exist_ok=True)
    save(run_, None, epoch_end=False, is_best=False)
    ckpt = str(tmp_path / "run" / "checkpoint_last.pt")
    bad = ["--top-p", "0", "--top-k", "-1", "--temperature", "nan", "--length", "-1",
           "--num-samples", "0"]  # fmt: skip
    line = error_line(run_main("sample", "--path", ckpt, *bad, check=False))  # in-process
    for option in ("--top-p", "--top-k", "--temperature", "--length", "--num-samples"):
        assert option in line
    # Checked before loading: the same line for a checkpoint that does not exist.
    missing = run_main("sample", "--path", str(tmp_path / "none.pt"), *bad, check=False)
    assert error_line(missing) == line


RANK1_FAILS = '''
import os
from rnnkit.errors import RnnkitError
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tasks.lm import LanguageModelingTask

@TASK_REGISTRY.register("lm_rank1_fails")
class Rank1Fails(LanguageModelingTask):
    """lm whose worker of rank 1 meets an rnnkit error the launcher cannot foresee."""

    def loss(self, model, window, itr, criterion=None):
        if os.environ.get("RANK") == "1":
            raise RnnkitError("worker 1 alone sees this")
        return super().loss(model, window, itr, criterion)
'''


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_with_nproc_an_error_is_one_line_with_no_torchrun_traceback(lm, rnnkit_bin, tmp_path):
    # Found by the launcher before any worker starts.
    cmd = ["train", str(lm), "--save-dir", str(tmp_path / "run"), *TINY, "--batch-size", "4",
           "--max-epoch", "1", "--nproc-per-node", "2"]  # fmt: skip
    line = error_line(run(rnnkit_bin, *cmd, "--valid-subset", "dev", check=False))
    assert line.startswith("rnnkit: error: --valid-subset: no 'dev' split")
    # Met in a worker (2 gloo workers): handed to the launcher, printed once.
    plugin = tmp_path / "rank1_fails_plugin"
    plugin.mkdir()
    (plugin / "__init__.py").write_text(RANK1_FAILS)
    data = tmp_path / "lm1"
    make_char_data(data)
    (data / "preprocess.json").write_text('{"task": "lm_rank1_fails"}')
    cmd[1] = str(data)
    proc = run(rnnkit_bin, *cmd, "--user-dir", str(plugin), check=False)
    # After the log's start of training (the model's size and modules), one line, printed once.
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("rnnkit: error: ") == 1
    assert proc.stderr.splitlines()[-1] == "rnnkit: error: worker 1 alone sees this"
