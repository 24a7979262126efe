"""Sharded data directories (``DIR0:DIR1``): epoch k trains on shard (k-1) mod n, valid and the
dictionaries come from the first, every shard must match the first, resume reads the right one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from test_training import TINY, params

from rnnkit.config import resolve
from rnnkit.data import shards
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task
from rnnkit.tasks.lm import LanguageModelingTask
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit
from rnnkit.training.preflight import PreflightError, check_run


def lm_shards(tmp_path: Path, n: int = 2) -> list[Path]:
    """``n`` lm shards binarized as the README says: the first as usual (with valid), the
    others with the first's dictionary. Shard i's train text uses its own mix of words."""
    words = ["ab", "ba", "abc", "cab", "b"]
    dirs = []
    for i in range(n):
        text = "".join(" ".join(words[(i + j + k) % 5] for k in range(2 + j % 3)) + "\n"
                       for j in range(30))  # fmt: skip
        (tmp_path / f"train{i}.txt").write_text(text)
        opts: dict = {"trainpref": str(tmp_path / f"train{i}.txt"), "workers": 1}
        if i == 0:
            (tmp_path / "valid.txt").write_text(text[:120])
            opts["validpref"] = (str(tmp_path / "valid.txt"),)
        else:
            opts["srcdict"] = str(dirs[0] / "dict.txt")
        dirs.append(tmp_path / f"shard{i}")
        preprocess(PreprocessConfig(task="lm", destdir=str(dirs[-1]), **opts))
    return dirs


def joined(dirs: list[Path]) -> str:
    return ":".join(map(str, dirs))


def make_run(data: str, save: Path, **train):
    options = {"batch_size": 2, "bptt": 4, "optimizer": "adam", "lr": 0.01, "seed": 3,
               "log_interval": 1e9, "random_bptt": True}  # fmt: skip
    cfg = resolve(TrainConfig, {**options, **train})
    return build_run(cfg, load_task(data), "rnn_lm", [TINY], save)


def test_epoch_k_trains_on_shard_k_minus_1_mod_n(tmp_path):
    dirs = lm_shards(tmp_path, 3)
    task = load_task(joined(dirs))
    assert task.data_dir == str(dirs[0])  # valid, test and dictionaries: the first shard
    chosen = [shards.train_task(task, epoch).data_dir for epoch in range(1, 8)]
    assert chosen == [str(dirs[i]) for i in (0, 1, 2, 0, 1, 2, 0)]
    assert shards.train_task(task, 1) is task
    one = load_task(dirs[1])
    assert shards.shards_of(one) is None and shards.train_task(one, 2) is one


@pytest.mark.slow
def test_resume_in_epoch_2_reads_shard_1(tmp_path, monkeypatch):
    dirs = lm_shards(tmp_path)
    straight = make_run(joined(dirs), tmp_path / "a", max_epoch=2)
    fit(straight)
    fit(make_run(joined(dirs), tmp_path / "b", max_epoch=1))  # stops after epoch 1
    read: list[tuple[str, str]] = []
    rows = LanguageModelingTask.rows

    def spy(self, split, batch_size):
        read.append((Path(self.data_dir).name, split))
        return rows(self, split, batch_size)

    monkeypatch.setattr(LanguageModelingTask, "rows", spy)
    resumed = make_run(joined(dirs), tmp_path / "b", max_epoch=2)
    fit(resumed)
    assert ("shard1", "train") in read and ("shard0", "train") not in read
    assert {d for d, split in read if split == "valid"} == {"shard0"}
    for k, v in params(straight).items():
        assert torch.equal(v, params(resumed)[k]), k


def test_a_shard_with_another_dictionary_is_refused(tmp_path):
    dirs = lm_shards(tmp_path)
    dict_txt = dirs[1] / "dict.txt"
    dict_txt.write_text(dict_txt.read_text().replace("ab ", "zz "))
    with pytest.raises(RnnkitError) as e:
        load_task(joined(dirs))
    assert str(e.value) == (
        f"shard 2 of 2 ({dirs[1]}): {dict_txt} differs from {dirs[0] / 'dict.txt'}; every shard "
        f"must use the first shard's dict.txt (binarize it with `rnnkit preprocess --srcdict "
        f"{dirs[0] / 'dict.txt'}`)"
    )
    os.remove(dict_txt)
    with pytest.raises(RnnkitError, match=r"shard 2 of 2 .*dict.txt is missing; every shard"):
        load_task(joined(dirs))


def test_a_shard_of_another_task_is_refused(tmp_path):
    dirs = lm_shards(tmp_path)
    meta = json.loads((dirs[1] / "preprocess.json").read_text())
    (dirs[1] / "preprocess.json").write_text(json.dumps({**meta, "task": "classification"}))
    with pytest.raises(RnnkitError, match=r"^shard 2 of 2 \(.*shard1\) holds 'classification' "):
        load_task(joined(dirs))


def test_a_missing_shard_is_one_line(tmp_path):
    dirs = lm_shards(tmp_path, 1)
    with pytest.raises(RnnkitError) as e:
        load_task(f"{dirs[0]}:{tmp_path / 'nope'}")
    assert str(e.value) == f"{tmp_path / 'nope'}: no such data directory (shard 2 of 2)"


def test_the_preflight_checks_the_train_split_of_every_shard(tmp_path):
    dirs = lm_shards(tmp_path)
    cfg = resolve(TrainConfig, {"batch_size": 2})
    check_run(cfg, load_task(joined(dirs)))
    for suffix in (".bin", ".idx"):
        os.remove(dirs[1] / f"train{suffix}")
    with pytest.raises(PreflightError, match=rf"no 'train' split in {dirs[1]} "):
        check_run(cfg, load_task(joined(dirs)))


def test_translation_trains_on_the_shard_of_the_epoch(tmp_path):
    dirs: list[Path] = []
    for i, n in enumerate((4, 7)):
        for lang, words in (("de", "ein zwei drei"), ("en", "one two three")):
            (tmp_path / f"train{i}.{lang}").write_text(f"{words}\n" * n)
        opts: dict = {"task": "translation", "source_lang": "de", "target_lang": "en",
                      "trainpref": str(tmp_path / f"train{i}"), "workers": 1}  # fmt: skip
        if dirs:
            opts |= {"srcdict": str(dirs[0] / "dict.de.txt"),
                     "tgtdict": str(dirs[0] / "dict.en.txt")}  # fmt: skip
        dirs.append(tmp_path / f"shard{i}")
        preprocess(PreprocessConfig(destdir=str(dirs[-1]), **opts))
    task = load_task(joined(dirs))
    assert [len(shards.train_task(task, e).datasets("train")[0]) for e in (1, 2, 3)] == [4, 7, 4]
