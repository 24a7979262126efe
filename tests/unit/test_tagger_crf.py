"""``rnn_tagger`` with a CRF, character features and word dropout, through the tagging task.

The modules themselves are tested in ``test_crf.py`` and ``test_charfeatures.py``; here: the
tagger's options build them, the task trains on the CRF's NLL and decodes by its Viterbi on
every path (validation, binarized split, raw lines), checkpoints reload identically, and unseen
words and tags never crash. Data: the toy problem of ``test_tagging.py``.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit import scoring
from rnnkit.errors import RnnkitError
from rnnkit.modules.charfeatures import CharFeatures
from rnnkit.modules.crf import CRF
from rnnkit.modules.word_dropout import WordDropout
from rnnkit.tasks import load_task, task_from_checkpoint
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.loop import fit
from tests.unit.test_tagging import TINY, make_data, make_run

CPU = torch.device("cpu")
ALL = {"crf": True, "char-features": "cnn", "char-dim": 8, "char-embed-dim": 4,
       "word-dropout-alpha": 0.25, "label-head": True}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("crf"))


def test_defaults_build_none_of_the_new_parts(data):
    model, cfg = load_task(data).build_model("rnn_tagger", TINY)
    assert (cfg.crf, cfg.char_features, cfg.word_dropout_alpha) == (False, "none", 0.0)
    assert model.crf is None and model.char_features is None and model.word_drop is None
    assert not any(k.startswith(("crf.", "char_features.")) for k in model.state_dict())


def test_options_build_their_modules(data):
    model, _ = load_task(data).build_model("rnn_tagger", {**TINY, **ALL, "crf-bio-train": True})
    assert isinstance(model.crf, CRF) and model.crf.constrain_training
    assert isinstance(model.char_features, CharFeatures)
    assert isinstance(model.word_drop, WordDropout) and model.word_drop.active
    fixed, _ = load_task(data).build_model("rnn_tagger", {**TINY, "word-dropout": 0.1})
    assert fixed.word_drop is not None and fixed.word_drop.probs.max().item() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"crf-bio-train": True}, "--crf-bio-train needs --crf"),
     ({"word-dropout": 1.0}, "--word-dropout must be in"),
     ({"word-dropout-alpha": -1.0}, "--word-dropout-alpha must be"),
     ({"char-kernel-size": 2}, "--char-kernel-size must be odd")],
)  # fmt: skip
def test_bad_options_are_one_line_errors(data, options, message):
    with pytest.raises(RnnkitError, match=message):
        load_task(data).build_model("rnn_tagger", {**TINY, **options})


@pytest.mark.slow
def test_crf_tagger_loss_decreases_in_training(data, tmp_path):
    run = make_run(data, tmp_path, model={"crf": True, "label-head": True}, lr=0.02)
    task, model = run.task, run.model
    batch = task.data("train").collate(list(range(16)))
    tags = batch.tags
    tag_logits, _ = model(batch.tokens, batch.lengths)
    expected = model.crf(tag_logits, tags, batch.lengths).sum()
    assert task.losses(model, batch)[0].item() == pytest.approx(expected.item())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    first = task.loss(model, batch)[0].item()
    for _ in range(15):
        optimizer.zero_grad()
        task.loss(model, batch)[0].backward()
        optimizer.step()
    assert task.loss(model, batch)[0].item() < 0.7 * first
    assert model.crf.transitions.abs().sum() > 0  # the transitions learn too


def crf_model(data, **options):
    torch.manual_seed(0)
    model, _ = load_task(data).build_model("rnn_tagger", {**TINY, "crf": True, **options})
    with torch.no_grad():  # transitions far from zero, so Viterbi differs from arg-max
        model.crf.transitions.normal_(0.0, 2.0)
    return model.eval()


def test_every_decoding_path_is_the_crfs_viterbi(data):
    task, model = load_task(data), crf_model(data, **{"label-head": True})
    batch = task.data("valid").collate(list(range(12)))
    with torch.no_grad():
        tag_logits, _ = model(batch.tokens, batch.lengths)
        viterbi = model.crf.decode(tag_logits, batch.lengths).tags
    assert torch.equal(task.best_tags(model, tag_logits, batch.lengths), viterbi)
    words, tag_dict = task.dictionary, task.tag_dictionary
    lines = [" ".join(words.decode(batch.tokens[r, :n])) for r, n in enumerate(batch.lengths)]
    raw = task.tag_lines(model, lines, CPU, batch_size=5)
    for r, n in enumerate(batch.lengths.tolist()):
        assert raw[r]["tags"] == [tag_dict[i] for i in viterbi[r, :n].tolist()]
    argmax = tag_logits.masked_fill(~task.tag_mask, float("-inf")).argmax(-1)
    assert not torch.equal(argmax, viterbi)  # the test can tell the two apart


@pytest.mark.slow
def test_validation_and_split_prediction_decode_by_viterbi(data, tmp_path):
    run = make_run(data, tmp_path, model={"crf": True, "label-head": True}, max_epoch=1)
    fit(run)
    model, task = run.model.eval(), run.task
    torch.manual_seed(1)
    with torch.no_grad():
        model.crf.transitions.normal_(0.0, 2.0)
    pred, gold, argmax = {}, {}, {}
    for batch in task.eval_batches("valid", run.cfg):
        with torch.no_grad():
            tag_logits = model(batch.tokens, batch.lengths)[0]
        path = model.crf.decode(tag_logits, batch.lengths).tags
        best = tag_logits.masked_fill(~task.tag_mask, float("-inf")).argmax(-1)
        for row, (i, n) in enumerate(zip(batch.indices, batch.lengths.tolist(), strict=True)):
            pred[i] = [task.tag_dictionary[j] for j in path[row, :n].tolist()]
            gold[i] = [task.tag_dictionary[j] for j in batch.tags[row, :n].tolist()]
            argmax[i] = [task.tag_dictionary[j] for j in best[row, :n].tolist()]
    assert argmax != pred  # the test can tell Viterbi from arg-max
    state = load_checkpoint(run.save_dir / "checkpoint_last.pt")
    torch.save(state | {"model_state": model.state_dict()}, tmp_path / "edited.pt")
    loaded = rnnkit.load(tmp_path / "edited.pt", device="cpu")
    got = {r["id"]: r["tags"] for rs in loaded.predict_split(data, "valid") for r in rs}
    assert got == pred  # rnnkit generate on a binarized split
    metrics = task.evaluate(model, "valid", run.cfg, CPU)  # validation
    ids = sorted(pred)
    spans = scoring.span_counts([gold[i] for i in ids], [pred[i] for i in ids])
    assert metrics["f1"] == pytest.approx(spans.f1) and metrics["loss"] < float("inf")


def test_bio_rules_hold_in_decoding(data):
    task, model = load_task(data), crf_model(data)
    ix = task.tag_dictionary.index("I-x")
    with torch.no_grad():  # I-x everywhere if nothing stopped it
        model.tag_out.bias[ix] = 50.0
    out = task.tag_lines(model, ["a b c d e", "d d b", "b", "c b a b e"], CPU)
    for r in out:
        for prev, tag in zip(["O", *r["tags"]], r["tags"], strict=False):
            if tag == "I-x":
                assert prev in ("B-x", "I-x")
    assert any("I-x" in r["tags"] for r in out)  # allowed where B-x precedes it


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_char_features_and_word_dropout_train_save_and_reload(data, tmp_path, kind):
    run = make_run(data, tmp_path, model={**ALL, "char-features": kind}, max_epoch=1)
    fit(run)
    state = load_checkpoint(run.save_dir / "checkpoint_last.pt")
    task = task_from_checkpoint(state)
    model = task.model_from_checkpoint(state).eval()
    trained = run.model.eval()
    for k, v in trained.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    lines = ["a b c", "zzz a b qq", "", "e"]
    assert task.tag_lines(model, lines, CPU) == run.task.tag_lines(trained, lines, CPU)
    assert model.word_drop is not None and not model.word_drop.training


def test_unseen_words_are_read_by_their_characters(data):
    task = load_task(data)
    torch.manual_seed(0)
    model, _ = task.build_model("rnn_tagger", {**TINY, **ALL})
    model.eval()
    words = ["abab", "eded"]  # not in the vocabulary (single letters), their characters are
    assert {task.dictionary.index(w) for w in words} == {task.dictionary.unk_index}
    with torch.no_grad():
        [(rows, (tag_logits, _))] = list(task.run_lines(model, words, CPU, 2))
    assert [t for _, t in rows] == [["abab"], ["eded"]]
    assert not torch.allclose(tag_logits[0], tag_logits[1])  # two <unk>s, two spellings


@pytest.mark.slow
def test_unseen_tags_and_words_never_crash(tmp_path):
    valid = [(["a", "zz", "b"], ["B-z", "O", "I-z"], "new_label"), (["c", "q"], ["B-y", "O"], "x")]
    data = make_data(tmp_path, valid=valid)
    run = make_run(data, tmp_path / "run", model={**ALL, "crf-bio-train": True}, max_epoch=1)
    fit(run)
    m = run.task.evaluate(run.model, "valid", run.cfg, run.device)
    assert m["loss"] < float("inf") and m["label_acc"] <= 50  # the new label is a miss
    out = run.task.tag_lines(run.model, ["zz a qq b", "", "unseen words only"], CPU)
    assert [len(r["tags"]) for r in out] == [4, 0, 3]
    assert not {t for r in out for t in r["tags"]} & {"<unk>", "<pad>", "B-z", "I-z"}
