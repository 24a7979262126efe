"""The translation task: length-bucketed batches under budgets, rank shards, exact resume, and
checkpoint selection by validation BLEU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.config import resolve
from rnnkit.data.buckets import batch_by_size, shard
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit

TINY = {"encoder_embed_dim": 8, "encoder_hidden_size": 8, "decoder_embed_dim": 8,
        "decoder_hidden_size": 8}  # fmt: skip


def make_pairs(root: Path, n: int = 60) -> Path:
    """Reverse-the-sequence pairs over a 6-word vocabulary, 1-7 words each."""
    rng = np.random.default_rng(0)
    words = "a b c d e f".split()
    for split, count in (("train", n), ("valid", 12)):
        src = [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(count)]
        (root / f"{split}.src").write_text("".join(s + "\n" for s in src))
        (root / f"{split}.tgt").write_text("".join(" ".join(s.split()[::-1]) + "\n" for s in src))
    data = root / "data"
    preprocess(PreprocessConfig(task="translation", source_lang="src", target_lang="tgt",
                                trainpref=str(root / "train"), validpref=(str(root / "valid"),),
                                destdir=str(data)))  # fmt: skip
    return data


def make_run(tmp_path: Path, save: str, **train):
    data = tmp_path / "data"
    if not data.exists():
        make_pairs(tmp_path)
    cfg = resolve(TrainConfig, {"batch_size": 8, "optimizer": "adam", "lr": 0.01, "seed": 2,
                                "log_interval": 1e9, **train})  # fmt: skip
    return build_run(cfg, load_task(data), "attention_seq2seq", [TINY], tmp_path / save)


def test_batches_cover_every_example_once_within_budgets():
    sizes = np.random.default_rng(1).integers(1, 30, 500)
    batches = batch_by_size(sizes, batch_size=16, max_tokens=200, seed=7)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for b in batches:
        assert len(b) <= 16 and len(b) * sizes[b].max() <= 200
    assert [b.tolist() for b in batch_by_size(sizes, 16, 200, seed=7)] == [
        b.tolist() for b in batches
    ]  # one seed, one order
    with pytest.raises(RnnkitError, match="does not fit --max-tokens"):
        batch_by_size(sizes, 0, 10)


def test_shards_are_disjoint_and_equal():
    batches = list(range(11))
    parts = [shard(batches, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert sorted(sum(parts, [])) == list(range(9))


def _train(tmp_path: Path, save: str, **train) -> dict[str, torch.Tensor]:
    run = make_run(tmp_path, save, **train)
    fit(run)
    return {k: v.detach().clone() for k, v in run.model.state_dict().items()}


@pytest.mark.slow
def test_resume_mid_epoch_is_bitwise_identical(tmp_path):
    straight = _train(tmp_path, "a", max_epoch=2)
    _train(tmp_path, "b", max_epoch=2, max_update=5)  # stops mid-epoch 1 (8 batches/epoch)
    resumed = _train(tmp_path, "b", max_epoch=2)
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


@pytest.mark.slow
def test_eval_bleu_picks_the_best_checkpoint(tmp_path):
    search = '{"beam": 2, "max_len_b": 10}'
    run = make_run(tmp_path, "bleu", max_epoch=2, eval_bleu=True, eval_bleu_args=search,
                   best_checkpoint_metric="bleu", maximize_best_checkpoint_metric=True)  # fmt: skip
    fit(run)
    log = (tmp_path / "bleu" / "train_log.jsonl").read_text()
    assert '"bleu"' in log
    best = load_checkpoint(tmp_path / "bleu" / "checkpoint_best.pt")["progress"]["best"]
    valid = [r for r in map(eval_json, log.splitlines()) if r["event"] == "valid"]
    assert best == max(r["bleu"] for r in valid)


def eval_json(line: str) -> dict:
    import json

    return json.loads(line)


def test_loss_counts_target_tokens_without_padding(tmp_path):
    run = make_run(tmp_path, "loss")
    itr = run.task.train_iterator(run.cfg, run.model, run.device, torch.Generator())
    batch = next(iter(itr))
    _, ntokens, nsentences = run.task.loss(run.model, batch)
    assert ntokens == int((batch.target != 1).sum()) and nsentences == batch.target.size(0)
    assert torch.equal(batch.prev_output_tokens[:, 0], torch.full((nsentences,), 2))


def test_worker_shards_split_one_global_order(tmp_path):
    run = make_run(tmp_path, "shard")
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731  every worker's generator agrees
    whole = run.task.train_iterator(run.cfg, run.model, run.device, g())
    parts = [run.task.train_iterator(run.cfg, run.model, run.device, g(), shard=(r, 2))
             for r in range(2)]  # fmt: skip
    assert len(parts[0]) == len(parts[1]) == len(whole) // 2
    interleaved = [b for pair in zip(*(p.batches for p in parts), strict=True) for b in pair]
    assert [b.tolist() for b in interleaved] == [
        b.tolist() for b in whole.batches[: len(interleaved)]
    ]
    next(iter(parts[0]))
    assert parts[0].state_dict()["position"] == 2  # global batches done
