"""What ``rnnkit.load`` returns: the task's own inference object (its ``inference`` class),
with only the methods that fit the task; another task's method is a one-line error naming the
task; a task registered here, with its own class, is what ``load`` returns (no edits to hub)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.config import to_dict
from rnnkit.errors import RnnkitError
from rnnkit.tasks import TASK_REGISTRY, load_task
from rnnkit.tasks.inference import GenerateOptions, LinesRequest, Pretrained, ScoreOptions
from rnnkit.tasks.inference.lm import LanguageModel
from rnnkit.tasks.inference.tagging import Classifier, Tagger
from rnnkit.tasks.inference.translation import Translator
from rnnkit.tasks.lm import LanguageModelingTask
from rnnkit.training.checkpoint import save_checkpoint
from tests.unit.test_tagging import TINY as SENTENCE_TINY
from tests.unit.test_tagging import make_data
from tests.unit.test_training import TINY as LM_TINY
from tests.unit.test_training import make_char_data
from tests.unit.test_translation_task import TINY as PAIR_TINY
from tests.unit.test_translation_task import make_pairs


def write_checkpoint(data: Path, arch: str, model_cfg: dict, path: Path, **state) -> Path:
    """An untrained model of ``arch`` on ``data``'s task, saved as ``rnnkit train`` saves it."""
    torch.manual_seed(0)
    task = load_task(data)
    model, cfg = task.build_model(arch, model_cfg)
    save_checkpoint({"task": task.name, "arch": arch, "model": type(model).model_name,
                     "model_config": to_dict(cfg), "train_config": {}, **task.checkpoint_data(),
                     "model_state": model.state_dict(), **state}, path)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inference")
    lm = make_char_data(root / "lm")
    tags, labels = make_data(root / "tags"), make_data(root / "labels", task="classification")
    (root / "pairs").mkdir()
    pairs = make_pairs(root / "pairs")
    return {
        "lm": write_checkpoint(lm, "rnn_lm", LM_TINY, root / "lm.pt"),
        "tagging": write_checkpoint(
            tags, "rnn_tagger", {**SENTENCE_TINY, "label-head": True}, root / "tag.pt"
        ),  # fmt: skip
        "tagging_no_head": write_checkpoint(tags, "rnn_tagger", SENTENCE_TINY, root / "tag0.pt"),
        "classification": write_checkpoint(
            labels, "rnn_classifier", SENTENCE_TINY, root / "cls.pt"
        ),  # fmt: skip
        "translation": write_checkpoint(pairs, "attention_seq2seq", PAIR_TINY, root / "mt.pt"),
    }


@pytest.mark.parametrize("name, cls", [("lm", LanguageModel), ("tagging", Tagger),
                                       ("classification", Classifier),
                                       ("translation", Translator)])  # fmt: skip
def test_load_returns_the_tasks_own_class(ckpts, name, cls):
    model = rnnkit.load(ckpts[name], device="cpu")
    assert type(model) is cls and isinstance(model, rnnkit.Pretrained)
    assert model.task_name == name and TASK_REGISTRY.get(name).inference is cls


def test_each_class_has_only_the_methods_that_fit_it():
    assert hasattr(LanguageModel, "sample") and not hasattr(LanguageModel, "translate")
    assert hasattr(Translator, "translate") and not hasattr(Translator, "sample")
    assert hasattr(Translator, "score")  # forced scoring of given translations (issue 13)
    assert hasattr(Tagger, "tag") and hasattr(Tagger, "classify")
    assert hasattr(Classifier, "classify") and not hasattr(Classifier, "tag")


def test_a_foreign_method_is_an_error_naming_the_tasks(ckpts):
    lm = rnnkit.load(ckpts["lm"], device="cpu")
    with pytest.raises(RnnkitError, match=r"^translate\(\) needs a model of task translation; "
                       r"this checkpoint is task 'lm'$"):  # fmt: skip
        lm.translate(["a b"])
    with pytest.raises(RnnkitError, match=r"^classify\(\) needs a model of task classification "
                       r"or tagging; this checkpoint is task 'lm'$"):  # fmt: skip
        lm.classify(["a b"])
    assert not hasattr(lm, "tag")  # the error is an AttributeError too
    mt = rnnkit.load(ckpts["translation"], device="cpu")
    with pytest.raises(RnnkitError, match=r"^sample\(\) needs a model of task lm; this "):
        mt.sample_stream("x")
    with pytest.raises(AttributeError, match="no attribute 'no_such_method'"):
        mt.no_such_method()


def test_a_tagger_without_label_head_refuses_classify_and_print_label(ckpts):
    tagger = rnnkit.load(ckpts["tagging_no_head"], device="cpu")
    with pytest.raises(RnnkitError, match=r"this tagger has none \(train it with --label-head\)"):
        tagger.classify(["a b"])
    with pytest.raises(RnnkitError, match="^--print-label: this tagger has no label head"):
        tagger.generate_lines([[(1, "a b")]], LinesRequest(), GenerateOptions(print_label=True),
                              io.StringIO())  # fmt: skip


def test_command_line_hooks_a_task_lacks_are_one_line_errors(ckpts):
    lm = rnnkit.load(ckpts["lm"], device="cpu")
    decodes = "decodes classification, tagging and translation models \\(rnnkit sample "
    with pytest.raises(RnnkitError, match=f"lm.pt: a 'lm' checkpoint; rnnkit generate {decodes}"):
        lm.generate_lines([[(1, "a b")]], LinesRequest(), GenerateOptions(), io.StringIO())
    mt = rnnkit.load(ckpts["translation"], device="cpu")
    with pytest.raises(RnnkitError, match=r"mt.pt: a translation model scores translations "
                       r"given their sources: add --reference FILE"):  # fmt: skip
        mt.score_lines([[(1, "a b")]], LinesRequest(), io.StringIO())
    tagger = rnnkit.load(ckpts["tagging"], device="cpu")
    with pytest.raises(RnnkitError, match="^--bptt applies to language models, not to tagging$"):
        tagger.score_split(None, ScoreOptions(bptt=5), io.StringIO())  # type: ignore[arg-type]


def test_generate_lines_of_a_tagger_and_classifier_print_one_line_each(ckpts):
    lines = [[(1, "a b c"), (2, "")], [(3, "b")]]
    tagger = rnnkit.load(ckpts["tagging"], device="cpu")
    out = io.StringIO()
    tagger.generate_lines(lines, LinesRequest(), GenerateOptions(print_label=True), out)
    rows = out.getvalue().split("\n")
    tagged = tagger.tag(["a b c", "", "b"])
    assert rows[:3] == [f"{tagged[0]['label']}\t{' '.join(tagged[0]['tags'])}", "",
                        f"{tagged[2]['label']}\t{' '.join(tagged[2]['tags'])}"]  # fmt: skip
    classifier = rnnkit.load(ckpts["classification"], device="cpu")
    out = io.StringIO()
    classifier.generate_lines(lines, LinesRequest(), GenerateOptions(), out)
    assert out.getvalue().split("\n")[:3] == [
        classifier.classify(["a b c"])[0]["label"], "", classifier.classify(["b"])[0]["label"]
    ]  # fmt: skip


class Echo(Pretrained):
    """A plugin's inference object: ``echo`` and its own ``generate --input`` output."""

    def echo(self, text: str) -> str:
        return f"{self.task_name}: {text}"

    def generate_lines(self, batches, lines, options, out) -> None:
        out.writelines(f"{n}\t{self.echo(text)}\n" for batch in batches for n, text in batch)


class EchoTask(LanguageModelingTask):
    """A language-model task registered under another name, with its own inference class."""

    name = "echo_lm"
    inference = Echo


@pytest.fixture
def echo_task():
    TASK_REGISTRY.add("echo_lm", EchoTask)
    yield EchoTask
    TASK_REGISTRY._entries.pop("echo_lm")  # noqa: SLF001  (no leak into other tests)


def test_a_registered_task_brings_its_own_inference_class(ckpts, echo_task, tmp_path):
    state = torch.load(ckpts["lm"], weights_only=True)
    path = tmp_path / "echo.pt"
    torch.save({**state, "task": "echo_lm"}, path)
    model = rnnkit.load(path, device="cpu")
    assert type(model) is Echo and model.echo("hi") == "echo_lm: hi"
    out = io.StringIO()
    model.generate_lines([[(7, "x")]], LinesRequest(), GenerateOptions(), out)
    assert out.getvalue() == "7\techo_lm: x\n"
    lm = rnnkit.load(ckpts["lm"], device="cpu")
    with pytest.raises(RnnkitError, match=r"^echo\(\) needs a model of task echo_lm; this "):
        lm.echo("hi")
    assert "echo_lm" in str(lm.mismatch("generate_lines"))  # named among the tasks with it
