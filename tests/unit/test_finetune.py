"""Fine-tuning, restoring another run, resets and the checkpoints a save dir keeps (issue 13,
items 1-2): --finetune-from-model loads weights only and a rerun resumes; a foreign
checkpoint_last.pt, another model or other dictionaries are refused with one line; --restore-file
PATH continues another run; each --reset-* flag starts its part afresh; interval and best-K
checkpoints are pruned; --no-save-optimizer-state files resume with a fresh optimizer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task
from rnnkit.training import loop
from rnnkit.training.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.resume import dictionary_mismatch
from rnnkit.training.retention import best_checkpoints, is_among_best, prune_best_checkpoints
from rnnkit.training.run import build_run
from rnnkit.training.start import find_start, plan_start
from tests.unit.test_training import TINY, make_char_data

BASE = dict(
    batch_size=4,
    bptt=6,
    optimizer="adam",
    lr=0.01,
    seed=3,
    log_interval=0,
    device="cpu",
    max_epoch=1,
)


def build(tmp_path: Path, save: str, data: str = "data", model: dict | None = None, **given):
    """A run built as ``rnnkit train`` builds it, ``given`` being the options given."""
    root = tmp_path / data
    if not root.exists():
        make_char_data(root, "abcabcabd\nbcabca\n" * 20 if data == "data" else "xyzxyz\nzyx\n" * 20)
    options = {**BASE, **given}
    cfg = resolve(TrainConfig, options)
    layers = [{**TINY, **(model or {})}]
    return build_run(cfg, load_task(root), "rnn_lm", layers, tmp_path / save, given=set(options))


def trained(tmp_path: Path, save: str = "a", **given) -> Path:
    loop.fit(build(tmp_path, save, **{"max_epoch": 1, **given}))
    return tmp_path / save / "checkpoint_last.pt"


def test_finetune_loads_the_weights_only_and_a_rerun_resumes(tmp_path):
    source = trained(tmp_path)
    weights = load_checkpoint(source)["model_state"]
    tune = dict(finetune_from_model=str(source), optimizer="sgd", lr=0.5, momentum=0.9)
    run = build(tmp_path, "b", **tune)
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    p = run.progress
    assert (p.epoch, p.updates, p.best, p.iterator) == (1, 0, None, None)
    assert not run.optimizer.state and run.schedule.lr == 0.5
    loop.fit(run)
    saved = load_checkpoint(tmp_path / "b" / "checkpoint_last.pt", resume=True)
    assert saved["started_from"] == {"how": "finetune", "path": str(source.resolve())}
    # The same command again: it resumes its own run, never reloads the source's weights.
    again = build(tmp_path, "b", **tune, max_epoch=2)
    assert again.progress.epoch == 2 and again.progress.updates == saved["progress"]["updates"]
    assert again.optimizer.state  # the fine-tuning run's own momentum
    assert again.model.state_dict()["decoder.bias"].ne(weights["decoder.bias"]).any()
    loop.fit(again)
    resumed = load_checkpoint(tmp_path / "b" / "checkpoint_last.pt")
    assert resumed["started_from"]["how"] == "finetune"


def test_finetune_into_a_save_dir_holding_another_run_is_refused(tmp_path):
    source = trained(tmp_path)
    with pytest.raises(
        RnnkitError,
        match=r"^--finetune-from-model: .*a/checkpoint_last.pt holds "
        r"another run; resume it without --finetune-from-model, or use another",
    ):
        build(tmp_path, "a", finetune_from_model=str(source))
    trained(tmp_path, "b", finetune_from_model=str(source))
    other = tmp_path / "a" / "checkpoint1.pt"  # fine-tuned from another file: another run
    with pytest.raises(RnnkitError, match="b/checkpoint_last.pt holds another run"):
        build(tmp_path, "b", finetune_from_model=str(other))
    run = build(tmp_path, "a", finetune_from_model=str(source), reset=True)  # --reset: over
    assert run.progress.updates == 0
    run.close()
    with pytest.raises(RnnkitError, match="give one"):
        build(tmp_path, "c", finetune_from_model=str(source), restore_file=str(other))


def test_finetune_refuses_other_dictionaries_naming_the_first_mismatch(tmp_path):
    source = trained(tmp_path)
    with pytest.raises(
        RnnkitError,
        match=r"^--finetune-from-model: the 'main' dictionary of .*other differs from the one "
        r".*checkpoint_last.pt was trained with \(entry 1 of dict.txt is '.' here, '.' there\)",
    ):
        build(tmp_path, "b", data="other", finetune_from_model=str(source))
    assert dictionary_mismatch(["a 3", "b 2"], ["a 1", "b 9"]) is None  # counts do not matter
    assert (
        dictionary_mismatch(["a 3", "b 2"], ["a 3"])
        == "1 entries here, 2 there (the first 1 agree)"
    )
    assert dictionary_mismatch(["a 3"], None) == "this data has none"


def test_finetune_refuses_another_model_but_takes_a_new_dropout(tmp_path):
    source = trained(tmp_path)
    with pytest.raises(
        RnnkitError,
        match=r"--finetune-from-model: --hidden-size 8 -> 16 would "
        r"change the model",
    ):
        build(tmp_path, "b", model={"hidden-size": 16}, finetune_from_model=str(source))
    run = build(tmp_path, "b", model={"dropout": 0.3}, finetune_from_model=str(source))
    assert run.model_cfg.dropout == 0.3 and run.progress.updates == 0
    run.close()


def test_restore_file_path_continues_another_run_in_this_save_dir(tmp_path):
    source = trained(tmp_path)
    state = load_checkpoint(source, resume=True)
    run = build(tmp_path, "b", restore_file=str(source), max_epoch=2)
    assert run.progress.epoch == 2 and run.progress.updates == state["progress"]["updates"]
    assert run.optimizer.state  # the other run's optimizer state, as a resume
    loop.fit(run)
    last = tmp_path / "b" / "checkpoint_last.pt"
    assert load_checkpoint(last)["started_from"] == {
        "how": "restore",
        "path": str(source.resolve()),
    }
    cfg = resolve(TrainConfig, {**BASE, "restore_file": str(source)})
    start = find_start(cfg, tmp_path / "b")  # the same command again resumes its own run
    assert (start.kind, start.path) == ("resume", last)
    assert find_start(resolve(TrainConfig, BASE), tmp_path / "b").path == last
    own = resolve(TrainConfig, {**BASE, "restore_file": str(last)})
    assert find_start(own, tmp_path / "b").kind == "resume"  # a path into this save dir: its own
    weights_only = load_checkpoint(source)
    del weights_only["train_config"]  # as `rnnkit average` writes: a model, no run
    save_checkpoint(weights_only, tmp_path / "avg.pt")
    with pytest.raises(RnnkitError, match="no 'train_config' entry .* with --finetune-from-model"):
        build(tmp_path, "c", restore_file=str(tmp_path / "avg.pt"))
    with pytest.raises(RnnkitError, match="no such checkpoint"):
        build(tmp_path, "c", restore_file=str(tmp_path / "nowhere" / "x.pt"))


def _plan(tmp_path: Path, save: str, **given):
    cfg = resolve(TrainConfig, {**BASE, **given})
    task = load_task(tmp_path / "data")
    start = find_start(cfg, tmp_path / save)
    return plan_start(cfg, set(given), task, "rnn_lm", [TINY], start)[2]


def test_each_reset_flag_starts_its_part_afresh_and_says_so(tmp_path):
    first = trained(tmp_path)  # a whole epoch: a best value
    per_epoch = load_checkpoint(first)["progress"]["updates"]
    loop.fit(build(tmp_path, "a", max_epoch=2, max_update=per_epoch + 3))  # stops mid-epoch 2
    last = tmp_path / "a" / "checkpoint_last.pt"
    state = load_checkpoint(last, resume=True)
    state["schedule"]["lr"] = 123.0  # a schedule state a reset must not load
    save_checkpoint(state, last)
    kept = build(tmp_path, "a", max_epoch=3)
    assert kept.schedule.lr == 123.0 and kept.progress.iterator is not None
    assert kept.progress.best is not None and kept.optimizer.state
    kept.close()
    flags = dict(reset_lr_scheduler=True, reset_dataloader=True, reset_meters=True)
    run = build(tmp_path, "a", max_epoch=3, reset_optimizer=True, **flags)
    p, old = run.progress, state["progress"]
    assert run.schedule.lr == 0.01 and run.optimizer.param_groups[0]["lr"] == 0.01
    assert p.iterator is None and (p.epoch, p.updates) == (old["epoch"], old["updates"])
    assert (p.best, p.bad_validations) == (None, 0) and not run.optimizer.state
    run.close()
    messages = "\n".join(_plan(tmp_path, "a", reset_optimizer=True, **flags).messages)
    assert "--reset-optimizer: a fresh adam optimizer" in messages
    assert "--reset-lr-scheduler: a fresh fixed schedule from --lr 0.01" in messages
    assert f"--reset-dataloader: epoch {old['epoch']} restarts from its first batch" in messages
    assert "--reset-meters: the best validation so far" in messages


def test_keep_best_checkpoints_keeps_the_k_best_by_name(tmp_path):
    trained(tmp_path, max_epoch=4, keep_best_checkpoints=2, lr=0.03)
    save = tmp_path / "a"
    records = [json.loads(line) for line in (save / "train_log.jsonl").read_text().splitlines()]
    losses = sorted({round(r["loss"], 2) for r in records if r["event"] == "valid"})
    names = sorted(p.name for p in save.glob("checkpoint.best_*"))
    assert names == sorted(f"checkpoint.best_loss_{v:.2f}.pt" for v in losses[:2])
    valid = {r["updates"]: r["loss"] for r in records if r["event"] == "valid"}
    for name in names:  # each a normal checkpoint of that validation
        updates = load_checkpoint(save / name, resume=True)["progress"]["updates"]
        assert f"{valid[updates]:.2f}" == re.search(r"_(\d+\.\d+)\.pt$", name).group(1)


def test_best_k_files_follow_the_metric_direction(tmp_path):
    for value in ("10.00", "30.50", "20.25"):
        (tmp_path / f"checkpoint.best_bleu_{value}.pt").touch()
    (tmp_path / "checkpoint.best_loss_1.00.pt").touch()  # another metric: left alone
    assert not is_among_best(tmp_path, "bleu", 5.0, 3, maximize=True)
    assert is_among_best(tmp_path, "bleu", 25.0, 3, maximize=True)
    assert is_among_best(tmp_path, "bleu", 20.25, 3, maximize=True)  # same name: overwrites
    prune_best_checkpoints(tmp_path, "bleu", 2, maximize=True)
    assert [v for v, _ in best_checkpoints(tmp_path, "bleu", True)] == [30.5, 20.25]
    assert (tmp_path / "checkpoint.best_loss_1.00.pt").exists()
    prune_best_checkpoints(tmp_path, "bleu", 1, maximize=False)
    assert [p.name for _, p in best_checkpoints(tmp_path, "bleu", False)] == [
        "checkpoint.best_bleu_20.25.pt"
    ]


def test_interval_checkpoints_are_written_and_pruned(tmp_path):
    trained(tmp_path, max_epoch=3, save_interval_updates=2, keep_interval_updates=2)
    save = tmp_path / "a"
    found = sorted(save.glob("checkpoint_*_*.pt"), key=lambda p: int(p.stem.split("_")[2]))
    updates = load_checkpoint(save / "checkpoint_last.pt")["progress"]["updates"]
    last_even = updates - updates % 2
    assert [int(p.stem.split("_")[2]) for p in found] == [last_even - 2, last_even]
    for path in found:
        progress = load_checkpoint(path, resume=True)["progress"]
        assert path.name == f"checkpoint_{progress['epoch']}_{progress['updates']}.pt"


def test_no_save_optimizer_state_files_resume_with_a_fresh_optimizer(tmp_path):
    last = trained(tmp_path, no_save_optimizer_state=True)
    assert "optimizer" not in torch.load(last, weights_only=True)
    load_checkpoint(last, resume=True)  # still a complete checkpoint
    messages = "\n".join(_plan(tmp_path, "a", max_epoch=2).messages)
    assert "holds no optimizer state (--no-save-optimizer-state): a fresh adam" in messages
    run = build(tmp_path, "a", max_epoch=2, optimizer="sgd")  # may change: nothing to load
    assert run.progress.epoch == 2 and not run.optimizer.state
    loop.fit(run)
    assert load_checkpoint(last)["progress"]["epoch"] == 3
