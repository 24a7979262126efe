"""Reference cells against torch's fused kernels, the recurrent stack's paths, and dropouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.modules import recurrent
from rnnkit.modules.cells import CELL
from rnnkit.modules.dropout import LockedDropout, drop_weight, embedding_dropout
from rnnkit.modules.recurrent import RecurrentStack, RecurrentState
from rnnkit.modules.reference import ReferenceRNN

FUSED_CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
B, T, IN, H = 3, 5, 4, 6


def _pair(cell: str, layers: int, bidirectional: bool) -> tuple[nn.RNNBase, ReferenceRNN]:
    torch.manual_seed(0)
    fused = CELL.get(cell).fused(IN, H, layers, bidirectional, 0.0)
    ref = ReferenceRNN(cell, IN, H, layers, bidirectional)
    ref.load_state_dict(fused.state_dict())  # same names and layouts: loads strictly
    return fused, ref


def _run(module: nn.Module, x: torch.Tensor, hx: object) -> tuple[torch.Tensor, list]:
    """Output, then gradients of a fixed loss w.r.t. input, initial state and every weight."""
    out, h_n = module(x, hx)
    h_n = h_n if isinstance(h_n, tuple) else (h_n,)
    loss = (out * torch.linspace(-1, 1, out.size(-1))).sum() + sum(h.pow(2).sum() for h in h_n)
    leaves = [x, *(hx if isinstance(hx, tuple) else (hx,)), *module.parameters()]
    return out, [*h_n, *torch.autograd.grad(loss, leaves)]


@pytest.mark.parametrize("cell", FUSED_CELLS)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (2, True)])
def test_reference_matches_fused_forward_and_gradients(cell, layers, bidirectional):
    fused, ref = _pair(cell, layers, bidirectional)
    x = torch.randn(B, T, IN, requires_grad=True)
    shape = (layers * (2 if bidirectional else 1), B, H)
    h0 = torch.randn(shape, requires_grad=True)
    hx = (h0, torch.randn(shape, requires_grad=True)) if cell == "lstm" else h0
    out_f, grads_f = _run(fused, x, hx)
    out_r, grads_r = _run(ref, x, hx)
    torch.testing.assert_close(out_r, out_f, atol=1e-5, rtol=1e-5)
    assert len(grads_f) == len(grads_r)
    for g_r, g_f in zip(grads_r, grads_f, strict=True):
        torch.testing.assert_close(g_r, g_f, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_stack_paths_agree(cell):
    """One fused call, fused per layer (residual) and reference steps compute the same function."""
    torch.manual_seed(1)
    single = RecurrentStack(cell, H, H, 2, bidirectional=False)
    per_layer = RecurrentStack(cell, H, H, 2, residual=True)
    reference = RecurrentStack(cell, H, H, 2, residual=True, force_reference=True)
    assert single.single_call and not per_layer.single_call and reference.reference
    per_layer.load_state_dict(single.state_dict())
    reference.load_state_dict(single.state_dict())
    x = torch.randn(B, T, H)
    state = single.init_state(B)
    y_single, _ = single(x, state)
    y_per, s_per = per_layer(x, state)
    y_ref, s_ref = reference(x, state)
    torch.testing.assert_close(y_per, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_per.h, s_ref.h, atol=1e-5, rtol=1e-5)
    # Without the residual the second layer's input differs, so the outputs must differ.
    assert not torch.allclose(y_single, y_per, atol=1e-3)


def test_jordan_feeds_back_output_not_hidden():
    torch.manual_seed(0)
    jordan = ReferenceRNN("jordan_tanh", IN, H)
    elman = ReferenceRNN("rnn_tanh", IN, H)
    elman.load_state_dict({k: v for k, v in jordan.state_dict().items() if "_hy_" not in k})
    x = torch.randn(B, T, IN)
    y_j, h_j = jordan(x)
    y_e, _ = elman(x)
    assert y_j.shape == y_e.shape == (B, T, H) and h_j.shape == (1, B, H)
    # The carried state is the layer's output y_T, as Jordan (1986) defines it.
    torch.testing.assert_close(h_j[0], y_j[:, -1])
    # First step from a zero state: y_1 = tanh(W_hy tanh(W_ih x_1 + b) + b_hy).
    h1 = torch.tanh(x[:, 0] @ jordan.weight_ih_l0.T + jordan.bias_ih_l0 + jordan.bias_hh_l0)
    y1 = torch.tanh(h1 @ jordan.weight_hy_l0.T + jordan.bias_hy_l0)
    torch.testing.assert_close(y_j[:, 0], y1)
    assert not torch.allclose(y_j, y_e, atol=1e-3)


def test_layer_norm_normalizes_gates_and_changes_output():
    torch.manual_seed(0)
    plain = ReferenceRNN("lstm", IN, H, layer_norm=False)
    normed = ReferenceRNN("lstm", IN, H, layer_norm=True)
    normed.load_state_dict(plain.state_dict(), strict=False)
    assert {"ln_ih_l0.weight", "ln_hh_l0.weight", "ln_c_l0.weight"} <= set(normed.state_dict())
    x = 10 * torch.randn(B, T, IN)  # large inputs: LN keeps the pre-activations at unit scale
    y_plain, _ = plain(x)
    y_norm, _ = normed(x)
    assert torch.isfinite(y_norm).all() and not torch.allclose(y_plain, y_norm, atol=1e-3)
    gi = normed.ln_ih_l0(x @ normed.weight_ih_l0.T + normed.bias_ih_l0)
    torch.testing.assert_close(gi.std(-1, unbiased=False), torch.ones(B, T), atol=1e-3, rtol=0)


def test_weight_drop_one_mask_per_sequence(monkeypatch):
    masks: list[torch.Tensor] = []
    real = drop_weight

    def spy(weight, p, training):
        out = real(weight, p, training)
        masks.append(out == 0)
        return out

    monkeypatch.setattr("rnnkit.modules.reference.drop_weight", spy)
    torch.manual_seed(0)
    ref = ReferenceRNN("gru", IN, H, num_layers=2, weight_drop=0.5).train()
    ref(torch.randn(B, 7, IN))
    assert len(masks) == 2  # one per layer for all 7 time steps, not one per step
    assert all(0 < m.float().mean() < 1 for m in masks)
    ref.eval()
    masks.clear()
    ref(torch.randn(B, 7, IN))
    assert not any(m.any() for m in masks)


def test_weight_drop_stays_fused_and_drops_recurrent_weights():
    torch.manual_seed(0)
    stack = RecurrentStack("lstm", IN, H, 2, weight_drop=0.9)
    assert stack.single_call and not stack.reference
    x = torch.randn(B, T, IN)
    stack.eval()
    y_eval, _ = stack(x)
    stack.train()
    y_train, _ = stack(x)
    assert not torch.allclose(y_eval, y_train, atol=1e-4)
    torch.testing.assert_close(y_eval, stack.rnn(x)[0])  # eval: exactly the nn.LSTM call


def test_locked_dropout_mask_constant_over_time():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    y = drop(torch.ones(4, 9, 16))
    zeros = y == 0  # (B, T, D)
    assert zeros.any() and (~zeros).any()
    assert (zeros == zeros[:, :1]).all()  # the same units dropped at every step
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    embed = nn.Embedding(10, 8)
    tokens = torch.tensor([[1, 2, 3, 1, 2, 3, 4, 5, 6, 7]] * 4)
    out = embedding_dropout(embed, tokens, 0.5, training=True)  # (4, 10, 8)
    dropped = (out == 0).all(-1)  # (4, 10): whole vectors
    assert dropped.any() and (~dropped).any()
    for word in tokens.unique():
        at = tokens == word
        assert dropped[at].all() or not dropped[at].any()  # every occurrence alike
    kept = ~dropped
    torch.testing.assert_close(out[kept], 2 * embed(tokens)[kept])
    torch.testing.assert_close(embedding_dropout(embed, tokens, 0.5, False), embed(tokens))


def test_state_reorder_detach_and_init():
    stack = RecurrentStack("lstm", IN, H, 2, bidirectional=True)
    state = stack.init_state(3)
    assert state.h.shape == state.c.shape == (4, 3, H) and not state.h.any()
    y, state = stack(torch.randn(3, T, IN), state)
    assert y.shape == (3, T, 2 * H) and state.batch_size == 3
    picked = state.reorder(torch.tensor([2, 0]))
    torch.testing.assert_close(picked.h, state.h[:, [2, 0]])
    torch.testing.assert_close(picked.c, state.c[:, [2, 0]])
    assert not state.detach().h.requires_grad and state.h.requires_grad
    assert isinstance(state.to("cpu"), RecurrentState)
    assert RecurrentStack("gru", IN, H).init_state(2).c is None


def test_one_step_with_few_rows_runs_without_onednn(monkeypatch):
    """oneDNN's CPU LSTM is slower for a single step of a few rows (sampling, one sentence's
    beams) and faster with many: the stack runs those steps through torch's LSTM cell, chosen per
    call (no process-wide switch), with exactly the numbers of torch's kernel without oneDNN."""
    torch.manual_seed(0)
    stack = RecurrentStack("lstm", 4, 8, 2).eval()
    shapes, real = [], recurrent.run_lstm_cells

    def spy(x, *args, **kwargs):
        shapes.append(tuple(x.shape))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(recurrent, "run_lstm_cells", spy)
    before = torch.backends.mkldnn.enabled
    x = torch.randn(3, 1, 4)
    small, state = stack(x)
    stack(torch.randn(64, 1, 4))  # many rows
    stack(torch.randn(1, 5, 4))  # a sequence
    assert shapes == [(3, 1, 4)]
    assert torch.backends.mkldnn.enabled == before
    torch.backends.mkldnn.enabled = False
    try:
        ref, (h, c) = stack.rnn(x)
    finally:
        torch.backends.mkldnn.enabled = before
    assert torch.equal(small, ref) and torch.equal(state.h, h) and torch.equal(state.c, c)
