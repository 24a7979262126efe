"""The tagging and classification tasks: data, batches and resume, loss, evaluation, inference.

A toy problem stands in for ATIS: ``a`` is ``B-x`` only when a ``b`` follows (so the tag needs the
backward direction) and that ``b`` is ``I-x``; ``c`` is always ``B-y``; the label says whether
the sentence has a ``c``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from rnnkit import scoring
from rnnkit.config import resolve
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task, task_from_checkpoint
from rnnkit.tasks.tagging import ClassificationTask, TaggingTask
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit

TINY = {"embed-dim": 8, "hidden-size": 8, "dropout": 0.0}


def toy(n: int, seed: int) -> list[tuple[list[str], list[str], str]]:
    """``n`` random sentences with their tags and label."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        toks = [rng.choice("abcde") for _ in range(rng.randint(1, 7))]
        tags = ["O"] * len(toks)
        for i, t in enumerate(toks):
            if t == "a" and i + 1 < len(toks) and toks[i + 1] == "b":
                tags[i], tags[i + 1] = "B-x", "I-x"
            elif t == "c":
                tags[i] = "B-y"
        out.append((toks, tags, "has_c" if "c" in toks else "no_c"))
    return out


def write_split(folder: Path, rows, label: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seq.in").write_text("".join(" ".join(t) + "\n" for t, _, _ in rows))
    (folder / "seq.out").write_text("".join(" ".join(g) + "\n" for _, g, _ in rows))
    if label:
        (folder / "label").write_text("".join(lab + "\n" for _, _, lab in rows))
    return folder


def make_data(root: Path, task: str = "tagging", label: bool = True, valid=None) -> Path:
    """A toy data dir written by the real preprocess (in-process)."""
    train = write_split(root / "raw" / "train", toy(160, 1), label)
    valid = write_split(root / "raw" / "valid", valid or toy(40, 2), label)
    dest = root / f"data-{task}"
    preprocess(PreprocessConfig(task=task, trainpref=str(train), validpref=(str(valid),),
                                destdir=str(dest)))  # fmt: skip
    return dest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Train on one thread (as --threads 1 does), then give torch its thread count back: on a
    busy two-core machine OpenMP's spinning threads make tiny models many times slower."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("tagging"))


def train_cfg(**kw) -> TrainConfig:
    defaults = dict(batch_size=8, optimizer="adam", lr=0.05, seed=3, log_interval=1e9,
                    no_epoch_checkpoints=True, threads=1)  # fmt: skip
    return resolve(TrainConfig, {**defaults, **kw})


def make_run(data: Path, save: Path, arch: str = "rnn_tagger", model: dict | None = None, **kw):
    return build_run(train_cfg(**kw), load_task(data), arch, [{**TINY, **(model or {})}], save)


def test_data_dir_loads_the_tagging_task_with_its_dictionaries(data):
    task = load_task(data)
    assert isinstance(task, TaggingTask) and task.name == "tagging"
    assert {"B-x", "I-x", "B-y", "O"} <= set(task.tag_dictionary.symbols)
    assert {"has_c", "no_c"} <= set(task.label_dictionary.symbols)
    batch = task.data("valid").collate([0, 1, 2])
    assert batch.tokens.shape == batch.tags.shape == (3, int(batch.lengths.max()))
    assert batch.labels.shape == (3,)
    assert (batch.tags == task.dictionary.pad_index).sum() == (batch.tokens == 1).sum()


def test_batches_respect_both_budgets_and_cover_train_once(data):
    task = load_task(data)
    itr = task.train_iterator(train_cfg(batch_size=5, max_tokens=24), None, None,
                              torch.Generator().manual_seed(0))  # fmt: skip
    seen = []
    for batch in itr:
        assert len(batch.indices) <= 5 and batch.tokens.numel() <= 24
        seen += batch.indices
    assert sorted(seen) == list(range(160)) and itr.batches_done == len(itr)


def test_epoch_order_is_a_function_of_the_seed_and_differs_between_epochs(data):
    task, g = load_task(data), torch.Generator().manual_seed(0)
    first = [b.indices for b in task.train_iterator(train_cfg(), None, None, g)]
    second = [b.indices for b in task.train_iterator(train_cfg(), None, None, g)]
    again = [b.indices for b in task.train_iterator(train_cfg(), None, None,
                                                    torch.Generator().manual_seed(0))]  # fmt: skip
    assert first == again and first != second


def test_iterator_resumes_mid_epoch_from_its_state(data):
    task = load_task(data)
    itr = task.train_iterator(train_cfg(), None, None, torch.Generator().manual_seed(5))
    it = iter(itr)
    for _ in range(4):
        next(it)
    state = itr.state_dict()
    resumed = task.train_iterator(train_cfg(), None, None, torch.Generator(), resume=state)
    assert resumed.batches_done == 4 and len(resumed) == len(itr)
    assert [b.indices for b in resumed] == [b.indices for b in it]


def test_shards_split_one_global_batch_list(data):
    task, cfg = load_task(data), train_cfg()
    ranks = [task.train_iterator(cfg, None, None, torch.Generator().manual_seed(1),
                                 shard=(r, 2)) for r in range(2)]  # fmt: skip
    whole = task.train_iterator(cfg, None, None, torch.Generator().manual_seed(1))
    assert [b.tolist() for b in ranks[0].batches] == [b.tolist() for b in whole.batches[0::2]][
        : len(ranks[0])
    ]
    assert len(ranks[0]) == len(ranks[1])


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A tiny joint tagger trained on the toy problem (six epochs, about a second)."""
    run = make_run(data, tmp_path_factory.mktemp("run"), model={"label-head": True}, max_epoch=6)
    fit(run)
    return run


@pytest.mark.slow
def test_tiny_joint_model_learns_the_toy_problem(trained):
    run = trained
    m = run.task.evaluate(run.model, "valid", run.cfg, run.device)
    assert m["f1"] > 95 and m["acc"] > 97 and m["label_acc"] > 95
    assert set(m) >= {"loss", "ppl", "precision", "recall", "sent_acc"}
    assert m["ppl"] == pytest.approx(torch.tensor(m["loss"]).exp().item(), rel=1e-5)


@pytest.mark.slow
def test_evaluate_agrees_with_scoring_the_tagged_raw_lines(trained):
    """evaluate() on binarized valid == rnnkit.scoring on tag_lines() of the raw valid lines."""
    m = trained.task.evaluate(trained.model, "valid", trained.cfg, trained.device)
    rows = toy(40, 2)
    out = trained.task.tag_lines(trained.model, [" ".join(t) for t, _, _ in rows], trained.device)
    hyps, refs = [" ".join(r["tags"]) for r in out], [" ".join(g) for _, g, _ in rows]
    f1, acc = scoring.tag_scores(hyps, refs, "f1,acc")
    assert f1.score == pytest.approx(m["f1"]) and acc.score == pytest.approx(m["acc"])
    labels = scoring.label_accuracy([lab for _, _, lab in rows], [r["label"] for r in out])
    assert labels.score == pytest.approx(m["label_acc"])


@pytest.mark.slow
def test_checkpoint_rebuilds_the_task_and_tags_raw_lines(trained):
    state = load_checkpoint(trained.save_dir / "checkpoint_last.pt")
    task = task_from_checkpoint(state)
    model = task.model_from_checkpoint(state)
    assert task.data_dir is None and task.tag_dictionary == trained.task.tag_dictionary
    lines = ["d c e a", "e a", "", "d zzz c"]
    out = task.tag_lines(model, lines, torch.device("cpu"), batch_size=2)
    assert out == trained.task.tag_lines(trained.model, lines, torch.device("cpu"))
    assert [r["tokens"] for r in out] == [line.split() for line in lines]
    assert out[0]["tags"] == ["O", "B-y", "O", "O"] and out[1]["tags"] == ["O", "O"]
    assert out[2]["tags"] == [] and out[3]["tags"] == ["O", "O", "B-y"]
    assert out[0]["label"] == "has_c" and 0.5 < out[0]["prob"] <= 1
    labels = task.classify_lines(model, lines, torch.device("cpu"))
    assert [r["label"] for r in labels] == [r["label"] for r in out]
    assert labels[1] == {"tokens": ["e", "a"], "label": "no_c", "prob": out[1]["prob"]}


def test_batched_tagging_equals_one_line_at_a_time(data):
    task = load_task(data)
    torch.manual_seed(0)
    model, _ = task.build_model("rnn_tagger", {**TINY, "label-head": True, "pooling": "max"})
    lines = ["a b", "c d e a b c d", "e", "b a"]
    together = task.tag_lines(model, lines, torch.device("cpu"), batch_size=4)
    alone = [task.tag_lines(model, [line], torch.device("cpu"))[0] for line in lines]
    for a, b in zip(together, alone, strict=True):
        assert a["tags"] == b["tags"] and a["label"] == b["label"]
        assert a["prob"] == pytest.approx(b["prob"], abs=1e-6)


def test_decoding_never_outputs_specials_or_unseen_symbols(data):
    task = load_task(data)
    model, _ = task.build_model("rnn_tagger", {**TINY, "label-head": True})
    with torch.no_grad():  # make <unk> and the padding symbols the model's favourites
        model.tag_out.bias[: task.tag_dictionary.nspecial] = 100.0
        model.tag_out.bias[-1] = 100.0  # a madeupword (the dictionary is padded to 8)
        model.label_out.bias[3] = 100.0
    out = task.tag_lines(model, ["a b c"], torch.device("cpu"))[0]
    assert set(out["tags"]) <= {"O", "B-x", "I-x", "B-y"}
    assert out["label"] in {"has_c", "no_c"}


def test_unseen_valid_tags_and_labels_are_scored_not_crashed(tmp_path):
    valid = [(["a", "b"], ["B-z", "I-z"], "new_label"), (["c"], ["B-y"], "has_c")]
    data = make_data(tmp_path, valid=valid)
    run = make_run(data, tmp_path / "run", model={"label-head": True}, max_epoch=1)
    m = run.task.evaluate(run.model, "valid", run.cfg, run.device)
    assert m["recall"] <= 50 and m["label_acc"] <= 50 and m["loss"] < float("inf")


def test_label_head_needs_labels(tmp_path):
    task = load_task(make_data(tmp_path, label=False))
    assert task.label_dictionary is None
    with pytest.raises(RnnkitError, match="--label-head needs labels"):
        task.build_model("rnn_tagger", {**TINY, "label-head": True})
    model, _ = task.build_model("rnn_tagger", TINY)
    with pytest.raises(RnnkitError, match="no label head"):
        task.classify_lines(model, ["a"], torch.device("cpu"))
    assert "label" not in task.tag_lines(model, ["a"], torch.device("cpu"))[0]
    m = task.evaluate(model, "valid", train_cfg(), torch.device("cpu"))
    assert "label_acc" not in m and "f1" in m


def test_models_of_another_task_are_refused(data):
    with pytest.raises(RnnkitError, match="'classification' model; this data is for task"):
        load_task(data).build_model("rnn_classifier", TINY)


@pytest.mark.slow
def test_classification_preprocess_train_and_classify(tmp_path):
    data = make_data(tmp_path, task="classification")
    assert sorted(p.name for p in data.glob("dict.*")) == ["dict.in.txt", "dict.label.txt"]
    run = make_run(data, tmp_path / "run", arch="rnn_classifier", model={"pooling": "attention"},
                   max_epoch=6)  # fmt: skip
    assert isinstance(run.task, ClassificationTask)
    fit(run)
    m = run.task.evaluate(run.model, "valid", run.cfg, run.device)
    assert m["acc"] > 95 and set(m) == {"loss", "ppl", "acc"}
    state = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")
    task = task_from_checkpoint(state)
    out = task.classify_lines(
        task.model_from_checkpoint(state), ["a c", "d e"], torch.device("cpu")
    )
    assert [r["label"] for r in out] == ["has_c", "no_c"] and out[0]["tokens"] == ["a", "c"]


def test_classification_preprocess_needs_a_folder_with_labels(tmp_path):
    folder = write_split(tmp_path / "raw", toy(3, 0), label=False)
    with pytest.raises(RnnkitError, match="expected a folder with seq.in and label"):
        preprocess(PreprocessConfig(task="classification", trainpref=str(folder / "seq.in")))
    with pytest.raises(RnnkitError, match="label"):
        preprocess(PreprocessConfig(task="classification", trainpref=str(folder),
                                    destdir=str(tmp_path / "out")))  # fmt: skip
    with pytest.raises(RnnkitError, match="--tgtdict is for translation and tagging"):
        preprocess(PreprocessConfig(task="classification", trainpref=str(folder), tgtdict="x"))
