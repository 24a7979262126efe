"""Data parallelism in one process: lm shards and their resume, gradient accumulation, sharded
evaluation, the speed options on CPU. (Several processes: ``tests/e2e/test_ddp.py``.)"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from test_training import make_run, params

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit.tasks.lm import StreamIterator
from rnnkit.training import distributed
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import fit, train_update


def _iterator(run, **kw):
    return run.task.train_iterator(run.cfg, run.model, run.device, run.data_rng, **kw)


def test_lm_workers_take_contiguous_blocks_of_the_streams(tmp_path):
    run = make_run(tmp_path, batch_size=4)
    whole = _iterator(run)
    halves = [_iterator(run, shard=(r, 2)) for r in (0, 1)]
    rows = [itr.rows.columns(0, itr.rows.width) for itr in (*halves, whole)]  # (B, N) each
    assert torch.equal(torch.cat(rows[:2]), rows[2])
    assert len(halves[0]) == len(halves[1]) == len(whole)
    with pytest.raises(RnnkitError, match="--batch-size 4 .* not a multiple of the 3 workers"):
        _iterator(run, shard=(0, 3))


def test_resume_gives_each_worker_its_rows_of_the_carried_state(tmp_path):
    run = make_run(tmp_path, batch_size=4)
    whole = _iterator(run)
    run.task.loss(run.model, next(iter(whole)), whole)  # carries (layers, 4, H)
    state = whole.state_dict()
    mine = _iterator(run, resume=state, shard=(1, 2))
    assert mine.position == whole.position
    assert torch.equal(mine.carry.h, whole.carry.h[:, 2:]) and torch.equal(
        mine.carry.c, whole.carry.c[:, 2:]
    )
    other = dataclasses.replace(run.cfg, batch_size=2)
    with pytest.raises(RnnkitError, match="carries the state of 4 streams, not --batch-size 2"):
        run.task.train_iterator(other, run.model, run.device, run.data_rng, state)


def test_update_freq_divides_by_the_tokens_of_all_micro_batches(tmp_path):
    run = make_run(tmp_path, optimizer="sgd", lr=1.0)
    itr = run.task.iterator("train", 4, 6)
    w1, w2 = itertools.islice(iter(itr), 2)
    before = params(run)
    # Reference: one backward of (L1 + L2) / (n1 + n2), truncated between the windows.
    ref = StreamIterator(itr.rows, 6)
    l1, n1, _ = run.task.loss(run.model, w1, ref)
    l2, n2, _ = run.task.loss(run.model, w2, ref)
    ((l1 + l2) / (n1 + n2)).backward()
    grads = {n: p.grad.clone() for n, p in run.model.named_parameters()}
    loss, ntokens, votes = train_update(run, [w1, w2], itr, votes=[0.0, 1.0])
    assert ntokens == n1 + n2 and votes == [0.0, 1.0]
    assert loss == pytest.approx((l1 + l2).item(), rel=1e-6)
    for n, p in run.model.named_parameters():
        torch.testing.assert_close(p.detach(), before[n] - grads[n], rtol=1e-5, atol=1e-7)


def test_sharded_evaluation_adds_up_to_the_whole(tmp_path):
    run = make_run(tmp_path, batch_size=5)  # 5 streams on 2 workers: blocks of 2 and 3
    whole = run.task.evaluate(run.model, "valid", run.cfg, run.device)
    # One process: nothing to all-reduce, so each call returns its own block's numbers.
    parts = [
        run.task.evaluate(run.model, "valid", run.cfg, run.device, shard=(r, 2)) for r in (0, 1)
    ]
    assert sum(p["tokens"] for p in parts) == whole["tokens"]
    total = sum(p["loss"] * p["tokens"] for p in parts)
    assert total == pytest.approx(whole["loss"] * whole["tokens"], rel=1e-6)


def test_a_task_without_shard_is_refused_when_it_registers():
    """``shard=`` is part of the Task contract: checked once at registration, not per epoch."""
    from rnnkit.tasks import TASK_REGISTRY
    from rnnkit.tasks.lm import LanguageModelingTask

    class NoShard(LanguageModelingTask):
        def train_iterator(self, cfg, model, device, generator, resume=None):
            return None

    with pytest.raises(RnnkitError, match=r"lacks the shard= parameter of train_iterator\(\)"):
        TASK_REGISTRY.register("no_shard_lm")(NoShard)
    assert "no_shard_lm" not in TASK_REGISTRY


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu(tmp_path, monkeypatch):
    """On every CPU: natively, or with fp32 recurrent layers and one warning where oneDNN has no
    bf16 (its LSTM would fail there; ``tests/e2e/test_bf16_portable.py`` forces such a CPU)."""
    from rnnkit.training.precision import cpu_has_bf16

    warnings: list[str] = []
    monkeypatch.setattr(get_reporter(), "warning", warnings.append)
    fit(make_run(tmp_path, amp="bf16", max_update=3))
    assert sum("this CPU has no native bf16" in w for w in warnings) == (not cpu_has_bf16())
    state = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")
    assert state["progress"]["updates"] == 3 and "amp_scaler" not in state
    assert all(torch.isfinite(v).all() for v in state["model_state"].values())
    assert all(v.dtype == torch.float32 for v in state["model_state"].values())


def test_fp16_and_compile_fall_back_on_cpu_with_a_warning(tmp_path, monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(get_reporter(), "warning", warnings.append)
    run = make_run(tmp_path, amp="fp16", compile=True)
    assert run.precision.dtype is None and run.precision.scaler is None
    assert run.train_model is run.model
    assert any("--amp fp16 needs CUDA" in w for w in warnings)
    assert any("--compile is skipped on CPU" in w for w in warnings)


def test_bf16_warns_on_a_cpu_without_native_bf16(monkeypatch):
    from rnnkit.training import precision

    warnings: list[str] = []
    monkeypatch.setattr(get_reporter(), "warning", warnings.append)
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.Precision("bf16", cpu).dtype is torch.bfloat16 and not warnings
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.Precision("bf16", cpu).dtype is torch.bfloat16  # still honoured
    assert any("this CPU has no native bf16" in w for w in warnings)


def test_scale_options_are_checked():
    with pytest.raises(RnnkitError, match="--update-freq must be at least 1"):
        resolve(TrainConfig, {"update_freq": 0})
    with pytest.raises(RnnkitError, match="--ddp-timeout must be positive"):
        resolve(TrainConfig, {"ddp_timeout": 0})
    with pytest.raises(RnnkitError, match="--amp: 'bf17' is not one of none, bf16, fp16"):
        resolve(TrainConfig, {"amp": "bf17"})


def test_one_process_helpers_are_identities():
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object("x") == "x"
    assert distributed.as_worker_lost(RuntimeError("gloo: Connection reset by peer"), "") is None
