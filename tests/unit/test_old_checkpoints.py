"""Checkpoints written before issue 12's refactor load and decode identically today.

``tests/fixtures/old_checkpoints`` holds tiny checkpoints trained by commit cf3345f (see its
``make.py``) and what that code output for them (``expected.json``). Each case loads its
checkpoint with today's :func:`rnnkit.load` and asserts the same outputs: tokens, tags and labels
exactly, scores, probabilities and perplexities to 1e-5 relative (``generate`` prints scores to 4
decimals, so those also get 1e-4 absolute for rounding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rnnkit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_checkpoints"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
INPUTS: dict[str, list[str]] = EXPECTED["inputs"]
CASES: dict[str, dict[str, Any]] = EXPECTED["cases"]
REL = 1e-5


def by_task(*tasks: str) -> list[str]:
    return [name for name, case in CASES.items() if case["task"] in tasks]


def assert_records(got: list[dict[str, Any] | None], want: list[dict[str, Any]]) -> None:
    """Per-line result dicts: floats to ``REL``, everything else (tokens, tags, labels) exactly."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g is not None and set(g) == set(w)
        for key, value in w.items():
            if isinstance(value, float):
                assert g[key] == pytest.approx(value, rel=REL), key
            else:
                assert g[key] == value, key


def load(name: str) -> Any:
    return rnnkit.load(FIXTURE / f"{name}.pt", device="cpu")


def test_the_fixture_covers_every_task_and_decoder_style():
    assert {case["task"] for case in CASES.values()} == {
        "lm",
        "translation",
        "tagging",
        "classification",
    }
    assert len(by_task("translation")) == 4 and len(by_task("lm")) == 3


@pytest.mark.parametrize("name", by_task("lm"))
def test_lm_scores_perplexity_and_seeded_sample(name):
    model, want = load(name), CASES[name]
    assert_records(model.score(INPUTS["lm"]), want["score"])
    assert_records([model.perplexity(FIXTURE / "data_lm", "valid")], [want["perplexity"]])
    assert model.sample("a b", length=12, seed=7, temperature=0.8) == want["sample"]


@pytest.mark.parametrize("name", by_task("translation"))
def test_translation_beam5_lines_from_python(name):
    assert load(name).translate(INPUTS["translation"], beam=5) == CASES[name]["translate"]


def assert_generate_line(got: str, want: str) -> None:
    """One line of ``generate``: the score fields of H/D/P lines to rounding, the rest exactly."""
    g_fields, w_fields = got.split("\t"), want.split("\t")
    assert len(g_fields) == len(w_fields), (got, want)
    if want[:1] not in "HDP" or "-" not in want[:2]:
        assert got == want
        return
    assert g_fields[0] == w_fields[0] and g_fields[2:] == w_fields[2:], (got, want)
    g_nums, w_nums = g_fields[1].split(), w_fields[1].split()
    assert len(g_nums) == len(w_nums), (got, want)
    for g, w in zip(g_nums, w_nums, strict=True):
        assert float(g) == pytest.approx(float(w), rel=REL, abs=1e-4), (got, want)


@pytest.mark.parametrize("name", by_task("translation"))
def test_translation_generate_prints_the_same_hypotheses_and_scores(name):
    from rnnkit_cli.main import app

    args = ["generate", str(FIXTURE / "data_translation"), "--path", str(FIXTURE / f"{name}.pt"),
            "--gen-subset", "test", "--beam", "5", "--nbest", "2", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    got, want = result.stdout.splitlines(), CASES[name]["generate"]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_generate_line(g, w)


@pytest.mark.parametrize("name", by_task("tagging"))
def test_tagger_tags_and_label(name):
    model = load(name)
    assert_records(model.tag(INPUTS["tagging"]), CASES[name]["tag"])
    assert_records(model.classify(INPUTS["tagging"]), CASES[name]["classify"])


@pytest.mark.parametrize("name", by_task("classification"))
def test_classifier_labels(name):
    assert_records(load(name).classify(INPUTS["tagging"]), CASES[name]["classify"])
