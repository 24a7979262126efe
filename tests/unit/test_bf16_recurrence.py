"""bf16 autocast on a CPU where oneDNN has no bf16 (AVX2): every recurrent path — the stack's one
fused call, fused per layer, weight drop, reference steps, single decoding steps, the packed
encoders of seq2seq and the tagger — runs in fp32 inside autocast and equals fp32 exactly.

The CPU check is patched here, so these run alike on every CPU; ``tests/e2e/test_bf16_portable.py``
runs the commands on a real AVX2-capped oneDNN."""

from __future__ import annotations

import pytest
import torch

from rnnkit.models.tagger import EncoderConfig, SentenceEncoder
from rnnkit.modules import recurrent
from rnnkit.modules.encoder import RecurrentEncoder
from rnnkit.modules.recurrent import (
    RecurrentStack,
    RecurrentState,
    cpu_has_bf16,
    fp32_recurrence,
    lstm_runs_in_bf16,
)


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(recurrent, "cpu_has_bf16", lambda: False)


def bf16_exact(*shape: int) -> torch.Tensor:
    """Random fp32 values that bf16 holds exactly, so a bf16 input loses nothing."""
    return torch.randn(*shape).bfloat16().float()


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


STACKS = {
    "lstm, one call": {"cell": "lstm", "num_layers": 2},
    "gru, per layer": {"cell": "gru", "num_layers": 2, "locked_dropout": True, "dropout": 0.3},
    "rnn_tanh, residual": {"cell": "rnn_tanh", "num_layers": 2, "residual": True},
    "lstm, bidirectional": {"cell": "lstm", "bidirectional": True},
    "lstm, layer norm": {"cell": "lstm", "layer_norm": True},
    "jordan": {"cell": "jordan_tanh"},
}


@pytest.mark.parametrize("rows, steps", [(3, 5), (2, 1), (40, 1)])  # window, few rows, many
@pytest.mark.parametrize("options", STACKS.values(), ids=STACKS.keys())
def test_the_stack_under_bf16_autocast_runs_in_fp32(no_native_bf16, options, rows, steps):
    torch.manual_seed(0)
    stack = RecurrentStack(input_size=6, hidden_size=8, **options).eval()
    x = bf16_exact(rows, steps, 6)
    start = stack.init_state(rows)
    start = RecurrentState(bf16_exact(*start.h.shape), None if start.c is None else start.c)
    ref, ref_state = stack(x, start)
    with bf16_autocast():  # bf16 input and state, as a linear layer under autocast gives them
        bf16_state = RecurrentState(start.h.bfloat16(), start.c)
        out, state = stack(x.bfloat16(), bf16_state)
    assert out.dtype == state.h.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(state.h, ref_state.h, rtol=0, atol=0)


def test_training_with_weight_drop_gives_the_fp32_gradients(no_native_bf16):
    torch.manual_seed(0)
    stack = RecurrentStack("lstm", 6, 8, 2, weight_drop=0.5)  # one fused call, dropped W_hh
    x = bf16_exact(3, 4, 6)
    grads = []
    for autocast in (False, True):
        stack.zero_grad()
        torch.manual_seed(1)  # the same DropConnect mask both times
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out, _ = stack(x)
        out.float().pow(2).sum().backward()
        grads.append([p.grad.clone() for p in stack.parameters()])
    for fp32, bf16 in zip(*grads, strict=True):
        torch.testing.assert_close(bf16, fp32, rtol=0, atol=0)


def test_the_packed_encoders_under_bf16_autocast_run_in_fp32(no_native_bf16):
    torch.manual_seed(0)
    tokens = torch.tensor([[4, 5, 6, 7, 2], [5, 6, 2, 1, 1], [2, 1, 1, 1, 1]])
    lengths = torch.tensor([5, 3, 1])
    seq2seq = RecurrentEncoder("lstm", 10, 1, 6, 8, 2, bidirectional=True).eval()
    tagger = SentenceEncoder(EncoderConfig(embed_dim=6, hidden_size=8, num_layers=2), 10, 1)
    tagger.eval()
    ref = seq2seq(tokens, lengths), tagger(tokens, lengths)
    with bf16_autocast():
        got = seq2seq(tokens, lengths), tagger(tokens, lengths)
    torch.testing.assert_close(got[0].outputs, ref[0].outputs, rtol=0, atol=0)
    torch.testing.assert_close(got[0].final.c, ref[0].final.c, rtol=0, atol=0)
    for a, b in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_only_bf16_autocast_on_a_cpu_without_onednn_bf16_leaves_autocast(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(recurrent, "cpu_has_bf16", lambda: False)
    assert not fp32_recurrence(cpu)
    with bf16_autocast():
        assert fp32_recurrence(cpu) and not fp32_recurrence(torch.device("meta"))
    with torch.autocast("cpu", dtype=torch.float16):
        assert not fp32_recurrence(cpu)
    monkeypatch.setattr(recurrent, "cpu_has_bf16", lambda: True)
    with bf16_autocast():
        assert not fp32_recurrence(cpu)  # oneDNN runs the LSTM in bf16 there


def test_the_lstm_probe_draws_nothing_and_decides_the_cpu_check():
    rng = torch.get_rng_state()
    runs = lstm_runs_in_bf16()  # False on AVX2: oneDNN's error is caught
    assert torch.equal(torch.get_rng_state(), rng)
    if not runs:
        assert not cpu_has_bf16()
