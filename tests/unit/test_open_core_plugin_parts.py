"""The parts of the open-core fixture plugin (tests/fixtures/open_core_plugin), checked against
plain references written here: the MGU cell in rnnkit's one recurrent stack (both directions,
packed sentences), the scaled dot-product score in rnnkit's attention, and the regression
task's contract and value table. The end-to-end runs are tests/e2e/test_open_core_plugin.py.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.modules.attention import Attention
from rnnkit.modules.decoders import decoder_problems
from rnnkit.modules.recurrent import RecurrentStack
from rnnkit.registry import import_user_dir
from rnnkit.tasks.base import missing_members

PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "open_core_plugin"


@pytest.fixture
def plugin() -> object:
    """The plugin imported (its registrations undone after the test by the conftest)."""
    import_user_dir(PLUGIN)
    return sys.modules[PLUGIN.name]


def mgu_reference(x: torch.Tensor, w_ih, w_hh, b_ih) -> torch.Tensor:
    """Zhou et al.'s equations, one sentence (T, I) → outputs (T, H), from h_0 = 0."""
    hidden = w_hh.size(1)
    w_f, w_h = w_ih[:hidden], w_ih[hidden:]
    u_f, u_h = w_hh[:hidden], w_hh[hidden:]
    b_f, b_h = b_ih[:hidden], b_ih[hidden:]
    h, out = torch.zeros(hidden), []
    for x_t in x:
        f = torch.sigmoid(w_f @ x_t + u_f @ h + b_f)
        candidate = torch.tanh(w_h @ x_t + u_h @ (f * h) + b_h)
        h = (1 - f) * h + f * candidate
        out.append(h)
    return torch.stack(out)


def direction(p: dict[str, torch.Tensor], suffix: str) -> list[torch.Tensor]:
    """W_ih, W_hh and b_ih of layer 0's direction ``suffix`` in the stack's parameters."""
    return [p[f"rnn.{name}_l0{suffix}"] for name in ("weight_ih", "weight_hh", "bias_ih")]


def test_mgu_in_the_stack_follows_its_equations_both_ways_on_packed_rows(plugin):
    torch.manual_seed(0)
    stack = RecurrentStack("mgu", 3, 4, 1, bidirectional=True)
    p = dict(stack.named_parameters())
    assert p["rnn.weight_ih_l0"].shape == (8, 3) and p["rnn.weight_hh_l0"].shape == (8, 4)
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    with torch.no_grad():
        out, state = stack(x, None, lengths)
    for row, n in enumerate(lengths.tolist()):
        fwd = mgu_reference(x[row, :n], *direction(p, ""))
        bwd = mgu_reference(x[row, :n].flip(0), *direction(p, "_reverse")).flip(0)
        torch.testing.assert_close(out[row, :n], torch.cat([fwd, bwd], -1), atol=1e-6, rtol=0)
        torch.testing.assert_close(state.h[0, row], fwd[-1], atol=1e-6, rtol=0)
        torch.testing.assert_close(state.h[1, row], bwd[0], atol=1e-6, rtol=0)


def test_scaled_dot_attention_is_softmax_of_q_k_over_root_d_and_luong(plugin):
    torch.manual_seed(0)
    attn = Attention("scaled_dot", 6, 6)
    keys, query = torch.randn(2, 4, 6), torch.randn(2, 6)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    context, weights = attn(query, attn.prepare(keys, mask))
    scores = torch.einsum("bk,bsk->bs", query, keys) / math.sqrt(6)
    expected = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("bs,bsk->bk", expected, keys))
    assert decoder_problems("scaled_dot", True, "local-p") == []  # a current-state query
    with pytest.raises(RnnkitError, match="equal query and key sizes"):
        Attention("scaled_dot", 6, 8)


def test_regression_task_fulfils_the_contract_and_reads_values_back(plugin):
    task_cls = plugin.regression.RegressionTask
    assert missing_members(task_cls) == []
    assert task_cls.inference is plugin.inference.Regressor
    values = Dictionary()
    values.update({"0.5": 2, "-1.25": 1})
    values.finalize(padding_factor=8)
    table = plugin.regression.value_table(values)
    assert table[values.index("-1.25")] == -1.25 and table[values.index("0.5")] == 0.5
    assert torch.isnan(table[: values.nspecial]).all() and torch.isnan(table[-1])
