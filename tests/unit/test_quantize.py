"""int8 inference (issue 16.3): quantized models track fp32, int8 checkpoints round-trip exactly.

Tolerances. Weights are int8 with one scale per row (error <= max|w_row| / 254 per weight) and
activations are quantized per tensor to 7 bits on the fly (fbgemm's reduce_range), so each
matrix product carries about 1% relative error; through a few layers of tiny models that moves a
token's log-probability by a few hundredths of a nat. The bounds below (0.05 nats per token on
average, 0.1 on one recurrent output) are about 3x what these models show, and far below what a
wrong weight layout or gate order gives (whole nats).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import rnnkit
import rnnkit.quantization as quantization
from rnnkit.modules.recurrent import RecurrentStack
from rnnkit.quantization import (
    Int8RecurrentStack,
    expand_checkpoint,
    quantize_checkpoint,
    quantize_model,
    row_scales,
)
from rnnkit.tasks import task_from_checkpoint
from rnnkit.training.checkpoint import load_checkpoint, save_checkpoint
from rnnkit_cli.quantize import app as quantize_app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_checkpoints"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
INPUTS: dict[str, list[str]] = EXPECTED["inputs"]
PER_TOKEN_NATS = 0.05

pytestmark = pytest.mark.skipif(
    quantization.int8_engine() is None, reason="no x86/fbgemm int8 engine on this CPU"
)


def load_int8(path: Path, state: dict[str, Any] | None = None) -> Any:
    """What ``rnnkit.load(path, quantize="int8")`` does, through this module's functions only."""
    state = expand_checkpoint(state if state is not None else load_checkpoint(path))
    task = task_from_checkpoint(state)
    model = quantize_model(task.model_from_checkpoint(state))
    return type(task).inference(task, model, state, torch.device("cpu"), path)


def fp32(name: str) -> Any:
    return rnnkit.load(FIXTURE / f"{name}.pt", device="cpu")


def test_row_scales_survive_dequantization_exactly():
    torch.manual_seed(0)
    w = torch.randn(64, 33) * torch.logspace(-6, 2, 64).unsqueeze(1)
    w[3] = 0.0  # an all-zero row gets a tiny scale, not a division by zero
    scale = row_scales(w)
    q = torch.round(w / scale.unsqueeze(1)).clamp(-127, 127)
    assert q.abs().amax(dim=1)[torch.arange(64) != 3].eq(127).all()
    assert torch.equal(row_scales(q * scale.unsqueeze(1)), scale)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "options",
    [{}, {"bidirectional": True}, {"residual": True}, {"locked_dropout": True, "dropout": 0.3}],
)
def test_int8_stack_tracks_the_fp32_stack(cell, options):
    torch.manual_seed(0)
    stack = RecurrentStack(cell, 8, 8, 2, **options).eval()
    q = Int8RecurrentStack(stack)
    x, lengths = torch.randn(3, 5, 8), torch.tensor([5, 2, 4])
    for kwargs in ({}, {"lengths": lengths}):
        want, want_state = stack(x, **kwargs)
        got, got_state = q(x, **kwargs)
        assert got.shape == want.shape and got_state.h.shape == want_state.h.shape
        assert (got - want).abs().max() < 0.1
        assert (got_state.h - want_state.h).abs().max() < 0.1
    step, state = x[:, :1], q.init_state(3)  # one decoder step from the carried state
    assert (q(step, state)[0] - stack(step, stack.init_state(3))[0]).abs().max() < 0.1
    assert not list(q.parameters())


@pytest.mark.parametrize("name", ["lm_lstm"])
def test_quantized_lm_scores_close_to_fp32(name):
    want = fp32(name).score(INPUTS["lm"])
    got = load_int8(FIXTURE / f"{name}.pt").score(INPUTS["lm"])
    for g, w in zip(got, want, strict=True):
        assert g["tokens"] == w["tokens"]
        assert abs(g["logprob"] - w["logprob"]) / w["tokens"] < PER_TOKEN_NATS
        assert g["logprob"] != w["logprob"]  # it did run in int8


def test_quantized_lm_module_types():
    model = load_int8(FIXTURE / "lm_lstm.pt").model
    assert isinstance(model.rnn, Int8RecurrentStack)
    assert isinstance(model.decoder, torch.ao.nn.quantized.dynamic.Linear)


@pytest.mark.parametrize(
    "name", ["seq2seq_sutskever", "seq2seq_cho", "attention_bahdanau_bi", "attention_luong_feed"]
)
def test_quantized_translation_mostly_decodes_as_fp32(name):
    lines = INPUTS["translation"] + ["a b c d e", "j i h", "b b a", "c d"]
    want = fp32(name).translate(lines, beam=5)
    got = load_int8(FIXTURE / f"{name}.pt").translate(lines, beam=5)
    greedy_want = fp32(name).translate(lines, beam=1)
    greedy_got = load_int8(FIXTURE / f"{name}.pt").translate(lines, beam=1)
    # untrained-ish toy models have near-ties; a trained one agrees on >= 99% (benchmarks)
    assert sum(g == w for g, w in zip(got, want, strict=True)) >= len(lines) // 2
    assert sum(g == w for g, w in zip(greedy_got, greedy_want, strict=True)) >= len(lines) // 2


def test_quantized_tagger_tags_and_labels_as_fp32():
    want = fp32("tagger_label_head")
    got = load_int8(FIXTURE / "tagger_label_head.pt")
    for g, w in zip(got.tag(INPUTS["tagging"]), want.tag(INPUTS["tagging"]), strict=True):
        assert g["tags"] == w["tags"] and g["label"] == w["label"]
        assert g["prob"] == pytest.approx(w["prob"], abs=0.02)


@pytest.mark.parametrize("name", ["lm_layernorm_gru", "lm_jordan"])
def test_reference_cells_stay_fp32_with_one_warning(name, capsys):
    model = load_int8(FIXTURE / f"{name}.pt").model
    err = capsys.readouterr().err
    assert err.count("stay fp32") == 1 and "reference cells" in err
    assert isinstance(model.rnn, RecurrentStack)  # untouched, still fp32
    assert isinstance(model.decoder, torch.ao.nn.quantized.dynamic.Linear)


def test_no_int8_engine_warns_and_stays_fp32(monkeypatch, capsys):
    monkeypatch.setattr(quantization, "int8_engine", lambda: None)
    want = fp32("lm_lstm").score(INPUTS["lm"])
    got = load_int8(FIXTURE / "lm_lstm.pt")
    assert "no x86/fbgemm int8 engine" in capsys.readouterr().err
    assert isinstance(got.model.rnn, RecurrentStack)
    assert got.score(INPUTS["lm"]) == want


@pytest.mark.parametrize("name", ["attention_bahdanau_bi", "lm_lstm", "tagger_label_head"])
def test_int8_checkpoint_is_smaller_safe_and_decodes_bit_identically(name, tmp_path):
    src, out = FIXTURE / f"{name}.pt", tmp_path / "int8.pt"
    result = CliRunner().invoke(quantize_app, [str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    raw = torch.load(out, weights_only=True)
    assert raw["quantization"] == "int8" and "optimizer" not in raw
    assert all(e["int8"].dtype == torch.int8 for e in raw["quantized_state"].values())
    fp32_state = load_checkpoint(src)
    ints = sum(e["int8"].numel() for e in raw["quantized_state"].values())
    assert _stored_bytes(out) - _stored_bytes(src) < -ints * 2.5  # ~3 of 4 bytes saved each
    stored, direct = load_int8(out), load_int8(src, fp32_state)
    if name == "lm_lstm":
        assert stored.score(INPUTS["lm"]) == direct.score(INPUTS["lm"])
    elif name == "tagger_label_head":
        assert stored.tag(INPUTS["tagging"]) == direct.tag(INPUTS["tagging"])
    else:
        lines = INPUTS["translation"]
        assert stored.translate(lines, beam=5) == direct.translate(lines, beam=5)
        for a, b in zip(_int8_weights(stored.model), _int8_weights(direct.model), strict=True):
            assert torch.equal(a, b)


def _int8_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [
        m.weight().int_repr()
        for m in model.modules()
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
    ]


def _stored_bytes(path: Path) -> int:
    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist() if "/data/" in i.filename)


def test_expand_is_a_no_op_for_fp32_checkpoints_and_keeps_the_mark():
    state = load_checkpoint(FIXTURE / "lm_lstm.pt")
    assert expand_checkpoint(state) is state
    expanded = expand_checkpoint(quantize_checkpoint(state))
    assert expanded["quantization"] == "int8" and "quantized_state" not in expanded
    assert all(t.dtype == torch.float32 for t in expanded["model_state"].values())


def test_quantize_refuses_an_int8_checkpoint_and_a_missing_output(tmp_path):
    src, out = FIXTURE / "lm_lstm.pt", tmp_path / "q.pt"
    assert CliRunner().invoke(quantize_app, [str(src)]).exit_code != 0
    save_checkpoint(quantize_checkpoint(load_checkpoint(src)), out)
    result = CliRunner().invoke(quantize_app, [str(out), "--output", str(tmp_path / "r.pt")])
    assert result.exit_code != 0 and "already an int8" in str(result.exception)


def test_elman_stacks_stay_fp32_and_one_warning_names_them_all(capsys):
    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "a": RecurrentStack("rnn_tanh", 8, 8),
            "b": RecurrentStack("lstm", 8, 8, layer_norm=True),
            "c": RecurrentStack("gru", 8, 8),
        }
    )
    quantize_model(model)
    lines = [line for line in capsys.readouterr().err.splitlines() if "stay fp32" in line]
    assert len(lines) == 1 and "a (rnn_tanh, no int8 kernel)" in lines[0]
    assert "b (lstm, reference cells)" in lines[0] and " c " not in lines[0]
    assert isinstance(model["a"], RecurrentStack) and isinstance(model["b"], RecurrentStack)
    assert isinstance(model["c"], Int8RecurrentStack)
