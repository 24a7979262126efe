"""The Task contract (rnnkit/tasks/base.py): registration checks a class against it, and
preprocess and load_task reach a task only through the registry, never by a name switch."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnkit.data.corpus import Stream
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.tasks import TASK_REGISTRY, Task, TaskBase, load_task
from rnnkit.tasks.base import DictionarySpec, missing_members
from rnnkit.tokenizers import load_tokenizer


class ReversedLines(TaskBase):
    """A task rnnkit does not know: ``PREFIX.raw`` a split, written as ``{split}.rev``."""

    name = "reversed_lines"

    def __init__(self, dictionary: Dictionary, data_dir: str | None = None) -> None:
        self.dictionary, self.data_dir = dictionary, data_dir
        self.tokenizer = load_tokenizer("space", None)

    @classmethod
    def streams(cls, cfg: Any) -> tuple[Stream, ...]:
        return (Stream("raw", "text", "rev", "dict.rev.txt", True),)

    @classmethod
    def input_files(cls, prefix: str, streams: Sequence[Stream]) -> tuple[Path, ...]:
        return (Path(f"{prefix}.raw"),)

    @classmethod
    def dictionary_specs(cls, cfg: Any, streams: Sequence[Stream]) -> list[DictionarySpec]:
        return [DictionarySpec(None, threshold=2)]  # symbols seen twice or more

    @classmethod
    def from_data_dir(cls, data_dir: str, meta: Mapping[str, Any]) -> ReversedLines:
        return cls(Dictionary.load(Path(data_dir) / "dict.rev.txt"), os.fspath(data_dir))

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> ReversedLines:
        return cls(Dictionary.from_lines(state["dictionaries"]["rev"]))

    def checkpoint_data(self) -> dict[str, Any]:
        return {"dictionaries": {"rev": self.dictionary.to_lines()}, "tokenizer": {}}

    def build_model(self, arch: str, *layers: Mapping[str, Any] | None) -> tuple[Any, Any]:
        return torch.nn.Linear(2, 2), None

    def model_from_checkpoint(self, state: Mapping[str, Any]) -> torch.nn.Module:
        return torch.nn.Linear(2, 2)

    def train_iterator(self, cfg, model, device, generator, resume=None, *, shard=(0, 1)):
        return iter(())

    def valid_metrics(self, cfg: Any) -> set[str]:
        return {"loss"}

    def loss(self, model, batch, itr, criterion=None):
        return torch.zeros(()), 0, 0

    def evaluate(self, model, split, cfg, device, *, shard=(0, 1)) -> dict[str, float]:
        return {"loss": 0.0}


def test_an_incomplete_task_is_refused_naming_what_it_lacks():
    class NoLoss(ReversedLines):
        loss = None  # type: ignore[assignment]
        evaluate = None  # type: ignore[assignment]

    with pytest.raises(RnnkitError) as e:
        TASK_REGISTRY.register("no_loss")(NoLoss)
    message = str(e.value)
    assert "'no_loss'" in message and "does not implement the Task contract" in message
    assert "method loss()" in message and "method evaluate()" in message
    assert "\n" not in message and "no_loss" not in TASK_REGISTRY


def test_a_plugin_class_need_not_inherit_but_must_have_every_member():
    class Bare:  # no TaskBase: the defaults are missing too, and named
        name = "bare"

    lacks = missing_members(Bare)
    assert "class attribute 'inference'" in lacks and "method train_iterator()" in lacks
    assert "method check_preprocess()" in lacks and "method dictionary_specs()" in lacks


def test_evaluate_must_take_shard():
    class WholeSplitOnly(ReversedLines):
        def evaluate(self, model, split, cfg, device):
            return {"loss": 0.0}

    with pytest.raises(RnnkitError, match=r"lacks the shard= parameter of evaluate\(\)"):
        TASK_REGISTRY.register("whole_split")(WholeSplitOnly)


def test_a_complete_task_registers_and_fulfils_the_protocol():
    TASK_REGISTRY.register("reversed_lines")(ReversedLines)
    assert TASK_REGISTRY.get("reversed_lines") is ReversedLines
    task = ReversedLines(Dictionary())
    assert isinstance(task, Task)
    for name in ("lm", "translation", "tagging", "classification"):
        assert missing_members(TASK_REGISTRY.get(name)) == [], name


def test_preprocess_and_load_task_dispatch_through_the_registry(tmp_path):
    TASK_REGISTRY.register("reversed_lines")(ReversedLines)
    (tmp_path / "train.raw").write_text("a b a\nb c a\n", encoding="utf-8")
    dest = tmp_path / "bin"
    cfg = PreprocessConfig(task="reversed_lines", trainpref=str(tmp_path / "train"),
                           destdir=str(dest))  # fmt: skip
    manifest = preprocess(cfg)
    assert manifest["task"] == "reversed_lines"
    assert (dest / "train.rev.bin").is_file() and (dest / "train.rev.idx").is_file()
    d = Dictionary.load(dest / "dict.rev.txt")
    assert "a" in d.symbols and "b" in d.symbols and "c" not in d.symbols  # threshold 2
    task = load_task(dest)
    assert type(task) is ReversedLines and task.data_dir == os.fspath(dest)
    meta = json.loads((dest / "preprocess.json").read_text())
    assert meta["dictionaries"] == {"dict.rev.txt": len(d)}


def test_an_unknown_task_gets_a_did_you_mean():
    with pytest.raises(RnnkitError, match=r"unknown task 'tagginng'; did you mean 'tagging'"):
        preprocess(PreprocessConfig(task="tagginng", trainpref="x"))


def test_the_registration_check_covers_every_member_of_the_protocol():
    from rnnkit.tasks import base

    methods = {n for n, v in vars(Task).items() if not n.startswith("_") and callable(v)}
    methods |= {n for n, v in vars(Task).items() if isinstance(v, classmethod)}
    checked = set(base.TASK_CLASS_METHODS + base.TASK_METHODS)
    assert methods == checked
    instance_data = {"dictionary", "tokenizer", "data_dir"}  # set by __init__, not the class
    assert set(Task.__annotations__) - instance_data == set(base.TASK_CLASS_ATTRIBUTES)


def test_a_dictionary_may_be_counted_over_every_split(tmp_path):
    class EverySplit(ReversedLines):
        @classmethod
        def dictionary_specs(cls, cfg, streams):
            return [DictionarySpec(None, every_split=True)]

    TASK_REGISTRY.register("every_split")(EverySplit)
    for split, text in (("train", "a b\n"), ("valid", "c\n"), ("test", "d a\n")):
        (tmp_path / f"{split}.raw").write_text(text, encoding="utf-8")
    prefixes = {"trainpref": str(tmp_path / "train"), "validpref": (str(tmp_path / "valid"),),
                "testpref": (str(tmp_path / "test"),)}  # fmt: skip
    preprocess(PreprocessConfig(task="every_split", destdir=str(tmp_path / "all"), **prefixes))
    symbols = Dictionary.load(tmp_path / "all" / "dict.rev.txt").symbols
    assert {"a", "b", "c", "d"} <= set(symbols)
    TASK_REGISTRY.register("reversed_lines")(ReversedLines)  # counted on train only
    preprocess(PreprocessConfig(task="reversed_lines", destdir=str(tmp_path / "train"), **prefixes))
    assert not {"c", "d"} & set(Dictionary.load(tmp_path / "train" / "dict.rev.txt").symbols)
