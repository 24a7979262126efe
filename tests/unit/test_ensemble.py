"""Ensembles (``rnnkit.load([a, b])``, ``--path a.pt:b.pt``): a model with itself is the model;
two models give the log of the mean of their probabilities, per step in beam search (each
model's state reordered with the beams), per token in LM scoring and sampling, per tag and
label in tagging; checkpoints of another task or other dictionaries are one-line errors."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.config import resolve, to_dict
from rnnkit.errors import RnnkitError
from rnnkit.generation.ensemble import (
    DecoderEnsemble,
    EnsembleState,
    LanguageModelEnsemble,
    SentenceEnsemble,
)
from rnnkit.generation.search import SearchConfig
from rnnkit.tasks import load_task
from rnnkit.training.checkpoint import save_checkpoint
from rnnkit.training.config import TrainConfig
from tests.helpers import run_main
from tests.unit.test_tagging import TINY as SENTENCE_TINY
from tests.unit.test_tagging import make_data
from tests.unit.test_training import TINY as LM_TINY
from tests.unit.test_training import make_char_data
from tests.unit.test_translation_task import TINY as PAIR_TINY
from tests.unit.test_translation_task import make_pairs

CRF = {"crf": True}
CHARS = {"crf": True, "char-features": "cnn", "char-dim": 8, "char-embed-dim": 4}
NO_ATTENTION = {**PAIR_TINY, "attention": "none", "input_feeding": False, "decoder_hidden_size": 6}


def write(data: Path, arch: str, cfg: dict, path: Path, seed: int = 0, scale: float = 1) -> Path:
    """An untrained model (weights drawn with ``seed``, times ``scale``: peaked distributions,
    so beams cross), saved as ``rnnkit train`` saves it."""
    torch.manual_seed(seed)
    task = load_task(data)
    model, resolved = task.build_model(arch, cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    state = {"task": task.name, "arch": arch, "model": type(model).model_name,
             "model_config": to_dict(resolved), "train_config": {}, **task.checkpoint_data(),
             "model_state": model.state_dict()}  # fmt: skip
    save_checkpoint(state, path)
    return path


@pytest.fixture(scope="module")
def ck(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ensemble")
    lm = make_char_data(root / "lm")
    other_lm = make_char_data(root / "lm2", "abcxyz\nzyx\n" * 10)
    tags, labels = make_data(root / "tags"), make_data(root / "labels", task="classification")
    (root / "pairs").mkdir()
    pairs = make_pairs(root / "pairs")
    head = {**SENTENCE_TINY, "label-head": True}
    return {
        "data_lm": lm,
        "data_tag": tags,
        "data_crf": tags,
        "data_mt": pairs,
        "lm": write(lm, "rnn_lm", LM_TINY, root / "lm.pt"),
        "lm2": write(lm, "rnn_lm", {**LM_TINY, "hidden-size": 6, "cell": "gru"}, root / "2.pt", 1),
        "lm_other_dict": write(other_lm, "rnn_lm", LM_TINY, root / "lm3.pt"),
        "tag": write(tags, "rnn_tagger", head, root / "tag.pt"),
        "tag2": write(tags, "rnn_tagger", head, root / "tag2.pt", 1),
        "crf": write(tags, "rnn_tagger", {**head, **CRF}, root / "crf.pt"),
        "crf2": write(tags, "rnn_tagger", {**head, **CRF}, root / "crf2.pt", 1),
        "chars": write(tags, "rnn_tagger", {**head, **CHARS}, root / "chars.pt"),
        "cls": write(labels, "rnn_classifier", SENTENCE_TINY, root / "cls.pt"),
        "cls2": write(labels, "rnn_classifier", SENTENCE_TINY, root / "cls2.pt", 1),
        "mt": write(pairs, "attention_seq2seq", PAIR_TINY, root / "mt.pt", 0, 5),
        "mt2": write(pairs, "attention_seq2seq", NO_ATTENTION, root / "mt2.pt", 1, 5),
    }


def load(*paths: Path) -> rnnkit.Pretrained:
    return rnnkit.load(list(paths), device="cpu")


# --- translation ---------------------------------------------------------------------------
LINES = ["a b c", "f", "d e f a b c d", "b b a"]


def test_translation_ensemble_of_a_model_with_itself_is_the_model(ck):
    single, double = rnnkit.load(ck["mt"], device="cpu"), load(ck["mt"], ck["mt"])
    assert isinstance(double.model, DecoderEnsemble) and len(double.model) == 2
    assert double.paths == [str(ck["mt"])] * 2 and len(double.models) == 2
    assert double.translate(LINES, beam=3, max_len_b=8) == single.translate(LINES, beam=3,
                                                                           max_len_b=8)  # fmt: skip
    cfg = SearchConfig(beam=3, nbest=3, max_len_b=8)
    src = [single.task.encode_source(line) for line in LINES]
    found = [m.task.search(m.model, src, cfg, m.device) for m in (single, double)]
    for a, b in zip(*found, strict=True):
        assert [h.tokens.tolist() for h in a] == [h.tokens.tolist() for h in b]
        torch.testing.assert_close([h.score for h in a], [h.score for h in b])


def test_a_step_is_the_log_of_the_mean_of_the_probabilities(ck):
    ens = load(ck["mt"], ck["mt2"])
    one, two = ens.models
    src = torch.tensor([[4, 5, 6, 2], [5, 2, 1, 1]])
    lengths = torch.tensor([4, 2])
    prev = torch.full((2,), 2)
    with torch.inference_mode():
        lp, state, attn = ens.model.step(prev, ens.model.encode(src, lengths))
        p1 = one.step(prev, one.encode(src, lengths))[0].exp()
        p2 = two.step(prev, two.encode(src, lengths))[0].exp()
    torch.testing.assert_close(lp, ((p1 + p2) / 2).log())
    assert attn is None  # the second model has no attention
    assert isinstance(state, EnsembleState) and len(state.states) == 2


def greedy_by_hand(models, src: list[int], max_len: int, eos: int, pad: int) -> list[int]:
    """One sentence, each model stepped on its own, argmax of the mean distribution."""
    src_t, states = torch.tensor([src]), []
    states = [m.encode(src_t, torch.tensor([len(src)])) for m in models]
    out, prev = [], eos
    for t in range(max_len + 1):
        probs = 0
        for i, m in enumerate(models):
            lp, states[i], _ = m.step(torch.tensor([prev]), states[i])
            probs = probs + lp[0].exp() / len(models)
        probs[pad] = 0
        if t < 1:
            probs[eos] = 0
        prev = eos if t == max_len else int(probs.argmax())
        if prev == eos:
            return out
        out.append(prev)
    return out


def test_batched_greedy_search_of_two_models_follows_both_states(ck):
    # Different hidden sizes and decoder styles: the two states differ in shape, and sentences
    # of different lengths finish at different steps, so rows are dropped and reordered.
    ens = load(ck["mt"], ck["mt2"])
    d = ens.task.tgt_dict
    src = [ens.task.encode_source(line) for line in LINES]
    cfg = SearchConfig(beam=1, max_len_b=6)
    with torch.inference_mode():
        found = ens.task.search(ens.model, src, cfg, ens.device)
        for s, hypos in zip(src, found, strict=True):
            expected = greedy_by_hand(ens.models, s, 6, d.eos_index, d.pad_index)
            assert hypos[0].tokens.tolist() == expected


def forced_by_hand(models, src: list[int], tokens: list[int], eos: int) -> list[float]:
    """Each step's log mean probability of ``tokens`` then eos, each model on its own."""
    src_t = torch.tensor([src])
    states = [m.encode(src_t, torch.tensor([len(src)])) for m in models]
    out, prev = [], eos
    for token in [*tokens, eos]:
        probs = 0
        for i, m in enumerate(models):
            lp, states[i], _ = m.step(torch.tensor([prev]), states[i])
            probs = probs + lp[0].exp() / len(models)
        out.append(math.log(probs[token]))
        prev = token
    return out


def test_beam_search_scores_every_hypothesis_by_the_mean_of_both_models(ck):
    # Every finished hypothesis of a batched beam search (beams reordered and sentences dropped
    # at every step) scores what each model gives its tokens alone: both states followed it.
    ens = load(ck["mt"], ck["mt2"])
    src = [ens.task.encode_source(line) for line in LINES]
    cfg = SearchConfig(beam=3, nbest=3, max_len_b=5)
    eos = ens.task.tgt_dict.eos_index
    with torch.inference_mode():
        found = ens.task.search(ens.model, src, cfg, ens.device)
        for s, hypos in zip(src, found, strict=True):
            assert len(hypos) == 3
            for h in hypos:
                expected = forced_by_hand(ens.models, s, h.tokens.tolist(), eos)
                assert h.positional_scores.tolist() == pytest.approx(expected, abs=1e-4)


# --- language models -----------------------------------------------------------------------
def test_lm_ensemble_of_a_model_with_itself_is_the_model(ck):
    single, double = rnnkit.load(ck["lm"], device="cpu"), load(ck["lm"], ck["lm"])
    assert isinstance(double.model, LanguageModelEnsemble)
    lines = ["abc", "bca", "cab abd"]
    for a, b in zip(single.score(lines), double.score(lines), strict=True):
        assert a["tokens"] == b["tokens"]
        assert a["logprob"] == pytest.approx(b["logprob"], abs=1e-5)
    assert single.sample(length=30, seed=3) == double.sample(length=30, seed=3)


def test_lm_score_is_the_mean_probability_per_token(ck):
    ens = load(ck["lm"], ck["lm2"])
    d, line = ens.task.dictionary, "abcab"
    ids = list(d.encode(ens.task.tokenizer.encode(line), append_eos=True))
    inputs = torch.tensor([[d.eos_index, *ids[:-1]]])
    with torch.inference_mode():
        probs = [torch.softmax(m(inputs)[0][0], -1) for m in ens.models]  # (T, V) each
    mean = (probs[0] + probs[1]) / 2
    by_hand = sum(math.log(mean[t, i]) for t, i in enumerate(ids))
    [scored] = ens.score([line])
    assert scored["tokens"] == len(ids)
    assert scored["logprob"] == pytest.approx(by_hand, abs=1e-4)
    assert by_hand != pytest.approx(rnnkit.load(ck["lm"], device="cpu").score([line])[0]["logprob"])


def test_lm_ensemble_state_carries_across_calls(ck):
    ens = load(ck["lm"], ck["lm2"])
    tokens = torch.tensor([[2, 4, 5, 6, 4, 5]])
    with torch.inference_mode():
        whole, _ = ens.model(tokens)
        first, state = ens.model(tokens[:, :3])
        rest, _ = ens.model(tokens[:, 3:], state.detach())
    torch.testing.assert_close(torch.cat([first, rest], 1), whole)


# --- tagging and classification ------------------------------------------------------------
SENTENCES = ["a b c d e", "c", "e a b a b", "a bx cc"]  # bx, cc: unseen words


@pytest.mark.parametrize("name", ["tag", "crf", "chars"])
def test_tagger_ensemble_of_a_model_with_itself_is_the_model(ck, name):
    single, double = rnnkit.load(ck[name], device="cpu"), load(ck[name], ck[name])
    assert isinstance(double.model, SentenceEnsemble)
    a, b = single.tag(SENTENCES), double.tag(SENTENCES)
    assert [r["tags"] for r in a] == [r["tags"] for r in b]
    assert [r["label"] for r in a] == [r["label"] for r in b]
    assert [r["prob"] for r in a] == pytest.approx([r["prob"] for r in b], abs=1e-5)


def test_classifier_ensemble_averages_the_probabilities(ck):
    ens = load(ck["cls"], ck["cls2"])
    singles = [rnnkit.load(ck[n], device="cpu") for n in ("cls", "cls2")]
    task = ens.task
    tokens = task.dictionary.encode(task.tokenizer.encode(SENTENCES[0]), append_eos=False)
    batch = (torch.tensor([tokens]), torch.tensor([len(tokens)]))
    with torch.inference_mode():
        mean = sum(torch.softmax(s.model(*batch)[0], -1) for s in singles) / 2
    [r] = ens.classify(SENTENCES[:1])
    best = int(mean.masked_fill(~task.label_mask, -1).argmax())
    assert r["label"] == task.label_dictionary[best]
    assert r["prob"] == pytest.approx(float(mean[best]), abs=1e-5)


def test_tags_of_two_models_are_the_argmax_of_the_mean(ck):
    ens = load(ck["tag"], ck["tag2"])
    task = ens.task
    tokens = task.dictionary.encode(task.tokenizer.encode(SENTENCES[0]), append_eos=False)
    batch = (torch.tensor([tokens]), torch.tensor([len(tokens)]))
    with torch.inference_mode():
        mean = sum(torch.softmax(m(*batch)[0][0], -1) for m in ens.models) / 2  # (T, K)
    [r] = ens.tag(SENTENCES[:1])
    best = mean.masked_fill(~task.tag_mask, -1).argmax(-1)
    assert r["tags"] == [task.tag_dictionary[i] for i in best.tolist()]


def test_crf_ensemble_averages_emissions_and_transitions(ck):
    ens = load(ck["crf"], ck["crf2"])
    crfs = [m.crf for m in ens.models]
    torch.testing.assert_close(ens.model.crf.transitions, (crfs[0].transitions +
                                                           crfs[1].transitions) / 2)  # fmt: skip
    assert len(ens.tag(SENTENCES)) == len(SENTENCES)
    with pytest.raises(RnnkitError, match="a CRF in every model or in none"):
        load(ck["crf"], ck["tag"])


@pytest.mark.parametrize("name", ["lm", "tag", "crf", "mt"])
def test_validation_metrics_of_a_model_with_itself_are_the_models(ck, name):
    task, cfg = load_task(ck[f"data_{name}"]), resolve(TrainConfig, {"batch_size": 8})
    single, double = rnnkit.load(ck[name], device="cpu"), load(ck[name], ck[name])
    a, b = (task.evaluate(m.model, "valid", cfg, m.device) for m in (single, double))
    assert a == pytest.approx(b, rel=1e-5)


# --- refusals ------------------------------------------------------------------------------
def test_an_ensemble_of_two_tasks_is_one_line_naming_the_file(ck):
    with pytest.raises(RnnkitError, match=rf"^{ck['tag']}: a 'tagging' checkpoint; .* is 'lm'"):
        load(ck["lm"], ck["lm2"], ck["tag"])


def test_an_ensemble_of_two_dictionaries_is_one_line_naming_the_file(ck):
    with pytest.raises(RnnkitError) as e:
        load(ck["lm"], ck["lm_other_dict"])
    assert str(e.value).startswith(f"{ck['lm_other_dict']}: its 'main' dictionary differs")
    assert "\n" not in str(e.value)


def test_int8_without_the_quantization_module_or_a_bad_value_is_one_line(ck, monkeypatch):
    with pytest.raises(RnnkitError, match="quantize must be one of none, int8"):
        rnnkit.load(ck["lm"], device="cpu", quantize="fp4")
    monkeypatch.setitem(sys.modules, "rnnkit.quantization", None)  # import fails
    with pytest.raises(RnnkitError, match=rf"^{ck['lm']}: int8 models need rnnkit.quantization"):
        rnnkit.load(ck["lm"], device="cpu", quantize="int8")
    assert rnnkit.load(ck["lm"], device="cpu").sample(length=3, seed=1)  # never imported


def test_int8_loading_expands_then_quantizes_every_member(ck, monkeypatch):
    calls = []
    fake = types.ModuleType("rnnkit.quantization")
    fake.expand_checkpoint = lambda state: calls.append("expand") or state  # type: ignore[attr-defined]
    fake.quantize_model = lambda model: calls.append("quantize") or model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnnkit.quantization", fake)
    ens = rnnkit.load([ck["lm"], ck["lm2"]], quantize="int8")
    assert calls == ["expand", "quantize"] * 2 and ens.device.type == "cpu"
    calls.clear()
    rnnkit.load(ck["lm"], device="cpu")
    assert calls == []


# --- rnnkit sample -------------------------------------------------------------------------
def sample(ck, *args: str) -> str:
    return run_main("sample", "--path", str(ck["lm"]), "--length", "12", "--seed", "4",
                    "--threads", "1", *args).stdout  # fmt: skip


def test_one_sample_is_unchanged_and_several_are_separated_by_a_blank_line(ck):
    one = sample(ck)
    assert one == rnnkit.load(ck["lm"], device="cpu").sample(length=12, seed=4) + "\n"
    two = sample(ck, "--num-samples", "2")
    second = rnnkit.load(ck["lm"], device="cpu").sample(length=12, seed=5) + "\n"
    assert two == one + "\n" + second


def test_sample_separator_is_printed_between_samples_with_escapes_read(ck):
    out = sample(ck, "--num-samples", "3", "--sample-separator", r"--\t--")
    parts = out.split("--\t--\n")
    assert len(parts) == 3 and all(p.endswith("\n") for p in parts)
    assert not out.endswith("--\t--\n")


def test_sample_from_an_ensemble_and_a_repeated_path(ck):
    joined = run_main("sample", "--path", f"{ck['lm']}:{ck['lm2']}", "--length", "12",
                      "--seed", "4", "--threads", "1").stdout  # fmt: skip
    repeated = run_main("sample", "--path", str(ck["lm"]), "--path", str(ck["lm2"]),
                        "--length", "12", "--seed", "4", "--threads", "1").stdout  # fmt: skip
    assert joined == repeated == load(ck["lm"], ck["lm2"]).sample(length=12, seed=4) + "\n"
    bad = run_main("sample", "--path", f"{ck['lm']}::x", check=False)
    assert bad.returncode == 2 and "empty checkpoint name" in bad.stderr


# --- rnnkit score / generate with --path a.pt:b.pt -----------------------------------------
def test_score_of_an_lm_ensemble_through_the_cli(ck):
    lines = "abcab\nbca\n"
    done = run_main("score", "--path", f"{ck['lm']}:{ck['lm2']}", "--input", "-",
                    "--threads", "1", stdin=lines)  # fmt: skip
    expected = load(ck["lm"], ck["lm2"]).score(lines.splitlines())
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["logprob"] for r in got] == pytest.approx([r["logprob"] for r in expected])


@pytest.mark.parametrize("names", [("tag", "tag2"), ("cls", "cls2")])
def test_generate_of_a_tagger_or_classifier_ensemble_through_the_cli(ck, names):
    paths = [ck[n] for n in names]
    done = run_main("generate", "--path", f"{paths[0]}:{paths[1]}", "--input", "-",
                    stdin="\n".join(SENTENCES) + "\n")  # fmt: skip
    ens = load(*paths)
    results = ens.tag(SENTENCES) if names[0] == "tag" else ens.classify(SENTENCES)
    shown = [" ".join(r["tags"]) if "tags" in r else r["label"] for r in results]
    assert done.stdout.splitlines() == shown
