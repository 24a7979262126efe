"""Resume rules and the save-dir lock: given options win over the checkpoint's, the rest is
inherited; what would change the model, the data or the optimizer type is refused; schedules
continue from a new --lr; a finished run has nothing to do; one run per save dir."""

from __future__ import annotations

import math
import os
import socket
import types
from pathlib import Path

import pytest
import torch

from rnnkit.config import resolve, to_dict
from rnnkit.errors import RnnkitError
from rnnkit.models.rnn_lm import RNNLMConfig
from rnnkit.tasks import load_task
from rnnkit.training import loop
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.lock import SaveDirLock
from rnnkit.training.optim import LR_SCHEDULER_REGISTRY
from rnnkit.training.resume import check_dictionaries, merge_model_layers, merge_train_config
from rnnkit.training.run import build_run
from tests.unit.test_training import TINY, make_char_data

FIRST = dict(batch_size=4, bptt=6, optimizer="adam", lr=0.01, seed=3, log_interval=1e9)


def build(tmp_path: Path, given: dict, model: dict | None = None, save: str = "run"):
    """A run built as the command line builds it: ``given`` are the options given this time."""
    data = tmp_path / "data"
    if not data.exists():
        make_char_data(data)
    cfg = resolve(TrainConfig, given)
    layers = [{**TINY, **(model or {})}]
    return build_run(cfg, load_task(data), "rnn_lm", layers, tmp_path / save, given=set(given))


@pytest.fixture
def trained(tmp_path):
    loop.fit(build(tmp_path, {**FIRST, "max_epoch": 1}))
    return tmp_path


def test_given_options_win_and_the_others_come_from_the_checkpoint():
    saved = to_dict(resolve(TrainConfig, {**FIRST, "threads": 2, "max_epoch": 1}))
    cfg = resolve(TrainConfig, {"lr": 0.001, "max_epoch": 3})
    merged, changed, notes = merge_train_config(cfg, saved, {"lr", "max-epoch"})
    assert (merged.lr, merged.max_epoch) == (0.001, 3)
    assert (merged.batch_size, merged.bptt, merged.optimizer, merged.seed) == (4, 6, "adam", 3)
    assert merged.threads == 0  # this invocation's own: never inherited
    assert changed == {"lr": (0.01, 0.001), "max_epoch": (1, 3)} and not notes


def test_seed_is_kept_and_an_old_checkpoints_missing_keys_take_this_runs_values():
    saved = to_dict(resolve(TrainConfig, FIRST))
    for key in ("lr_patience", "valid_subset", "reset_optimizer", "adam_betas"):
        del saved[key]
    cfg = resolve(TrainConfig, {"seed": 9, "lr_patience": 2, "adam_betas": "0.8,0.9"})
    merged, changed, notes = merge_train_config(cfg, saved, {"seed", "lr_patience", "adam_betas"})
    assert merged.seed == 3 and "--seed 9 ignored" in notes[0]
    assert merged.lr_patience == 2 and merged.adam_betas == (0.8, 0.9) and not changed


def test_a_model_field_change_is_refused_naming_it_and_dropout_may_change():
    state = {"arch": "rnn_lm", "model_config": to_dict(resolve(RNNLMConfig, TINY))}
    src = Path("runs/x/checkpoint_last.pt")
    with pytest.raises(RnnkitError, match="--hidden-size 8 -> 16 would change the model of runs"):
        merge_model_layers("rnn_lm", state, [{"hidden-size": "16"}], src)
    with pytest.raises(RnnkitError, match="--arch lstm_lm_zaremba_small: .* --arch rnn_lm"):
        merge_model_layers("lstm_lm_zaremba_small", state, [], src)
    layers, changed = merge_model_layers("rnn_lm", state, [{"dropout": 0.3}, None], src)
    assert changed == {"dropout": (0.0, 0.3)} and layers[-1] == {"dropout": 0.3}
    _, changed = merge_model_layers("rnn_lm", state, [], src)  # nothing given: the saved model
    assert changed == {}


def test_other_dictionaries_are_refused():
    def task(lines):
        data = {"dictionaries": {"main": lines}}
        return types.SimpleNamespace(checkpoint_data=lambda: data, data_dir="data-bin/x")

    state = {"dictionaries": {"main": ["a 3", "b 2"]}}
    check_dictionaries(task(["a 3", "b 2"]), state, Path("ck.pt"))
    with pytest.raises(RnnkitError, match="'main' dictionary of data-bin/x differs from .*ck.pt"):
        check_dictionaries(task(["a 3", "c 2"]), state, Path("ck.pt"))


def _schedule(name: str, **options):
    return LR_SCHEDULER_REGISTRY.get(name)(resolve(TrainConfig, {"lr_scheduler": name, **options}))


def _resumed(name: str, old, epoch: int, updates: int, **options):
    new = _schedule(name, **options)
    new.load_state_dict(old.state_dict())
    return new, new.rebase(epoch, updates)


def test_a_new_lr_rebases_every_schedule():
    old = _schedule("fixed", lr=1.0)
    assert _resumed("fixed", old, 2, 10, lr=0.1)[1] == pytest.approx(0.1)
    # zaremba: the decays of the epochs done (1..3, start 2) apply to the new base.
    old = _schedule("zaremba", lr=1.0, lr_decay=0.5, decay_start_epoch=2)
    for e in (1, 2, 3):
        old.step_epoch(e, None)
    assert old.lr == pytest.approx(0.25)
    assert _resumed("zaremba", old, 4, 30, lr=0.1, lr_decay=0.5, decay_start_epoch=2)[
        1
    ] == pytest.approx(0.025)
    # plateau: the new rate from now on; its best loss and bad-epoch count carry on.
    old = _schedule("plateau", lr=1.0, lr_decay=0.1)
    old.step_epoch(1, 2.0), old.step_epoch(2, 3.0)
    assert old.lr == pytest.approx(0.1)
    new, lr = _resumed("plateau", old, 3, 30, lr=0.5, lr_decay=0.1)
    assert lr == pytest.approx(0.5) and new.best == 2.0
    # warmup schedules: the rate of the current update from the new base.
    old = _schedule("inverse_sqrt", lr=1.0, warmup_updates=4)
    _, lr = _resumed("inverse_sqrt", old, 2, 16, lr=0.1, warmup_updates=4)
    assert lr == pytest.approx(0.1 * math.sqrt(4 / 16))


def test_schedule_options_come_from_the_config_not_the_checkpoint():
    old = _schedule("cosine", lr=1.0, warmup_updates=2, max_update=10)
    new = _schedule("cosine", lr=1.0, warmup_updates=2, max_update=100)
    new.load_state_dict(old.state_dict())
    assert new.max_update == 100 and new.step_update(10) > 0.9


@pytest.mark.slow
def test_resume_with_a_new_lr_and_weight_decay_uses_them(trained):
    run = build(trained, {"lr": 0.001, "weight_decay": 0.1, "max_epoch": 2})
    assert run.cfg.batch_size == 4 and run.cfg.optimizer == "adam"  # inherited
    assert run.schedule.lr == pytest.approx(0.001)
    group = run.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.001) and group["weight_decay"] == 0.1
    assert run.optimizer.state  # Adam's moments were loaded
    run.close()


@pytest.mark.slow
def test_another_optimizer_needs_reset_optimizer(trained):
    with pytest.raises(RnnkitError, match="--optimizer sgd differs from the adam .*--reset-optim"):
        build(trained, {"optimizer": "sgd", "max_epoch": 2})
    run = build(trained, {"optimizer": "sgd", "lr": 0.5, "reset_optimizer": True, "max_epoch": 2})
    assert isinstance(run.optimizer, torch.optim.SGD) and run.progress.updates > 0
    loop.fit(run)
    state = load_checkpoint(trained / "run" / "checkpoint_last.pt")
    assert state["train_config"]["optimizer"] == "sgd" and state["progress"]["epoch"] == 3


@pytest.mark.slow
def test_a_new_best_metric_forgets_the_best_so_far(trained):
    run = build(trained, {"best_checkpoint_metric": "ppl", "max_epoch": 2})
    assert run.progress.best is None and run.progress.bad_validations == 0
    run.close()


@pytest.mark.slow
def test_a_finished_run_has_nothing_left_to_do(trained):
    log = (trained / "run" / "train_log.jsonl").read_bytes()
    last = (trained / "run" / "checkpoint_last.pt").read_bytes()
    run = build(trained, {})  # the checkpoint's --max-epoch 1
    assert loop.finished(run) == "--max-epoch 1 reached"
    loop.fit(run)
    assert (trained / "run" / "train_log.jsonl").read_bytes() == log
    assert (trained / "run" / "checkpoint_last.pt").read_bytes() == last
    run = build(trained, {"patience": 1, "max_epoch": 5})
    run.progress.bad_validations = 1
    assert "--patience 1 exhausted" in loop.finished(run)
    run.close()


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    first = SaveDirLock(tmp_path / "run").acquire()
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    with pytest.raises(RnnkitError, match=f"in use by another training run \\({holder}"):
        SaveDirLock(tmp_path / "run").acquire()
    with pytest.raises(RnnkitError, match=holder):
        build(tmp_path, {**FIRST, "max_epoch": 1})
    with pytest.raises(RnnkitError, match=holder):  # a launcher's early check
        SaveDirLock(tmp_path / "run").check_free()
    first.release()
    SaveDirLock(tmp_path / "run").check_free()
    with SaveDirLock(tmp_path / "run") as again:
        assert again.held
    assert not again.held


def test_taking_the_lock_removes_leftover_temp_files(tmp_path):
    save = tmp_path / "run"
    save.mkdir()
    for name in (".checkpoint_last.pt.k2j3x9.tmp", ".checkpoint_best.pt.a1b2c3.tmp"):
        (save / name).write_bytes(b"half a checkpoint")
    (save / "notes.tmp").write_text("mine")  # not an atomic write's: kept
    with SaveDirLock(save):
        assert sorted(p.name for p in save.iterdir()) == [".lock", "notes.tmp"]


def test_a_save_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RnnkitError, match="--save-dir .*f: exists and is not a directory"):
        SaveDirLock(tmp_path / "f").acquire()
