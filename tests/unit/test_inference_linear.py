"""The decode-time layout of output-sized linear layers: same numbers, same state dict, and a
copy that follows the weight."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.modules.inference_linear import (
    FEW_ROWS,
    MIN_OUT,
    InferenceLinear,
    use_inference_layout,
    use_plain_layout,
)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, MIN_OUT))


@pytest.mark.parametrize("rows", [1, 5, FEW_ROWS - 1, FEW_ROWS + 3])
def test_same_outputs_as_nn_linear(rows):
    plain, fast = model(), model()
    assert use_inference_layout(fast) == 1  # only the output-sized layer
    assert type(fast[0]) is nn.Linear and type(fast[2]) is InferenceLinear
    x = torch.randn(rows, 16)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
        # any leading shape: (B, T, F) as the decoders give
        x3 = torch.randn(2, 3, 16)
        torch.testing.assert_close(fast(x3), plain(x3), rtol=1e-5, atol=1e-5)


def test_state_dict_and_training_are_untouched():
    plain, fast = model(), model()
    use_inference_layout(fast)
    assert list(fast.state_dict()) == list(plain.state_dict())  # the copy is not persistent
    x = torch.randn(4, 16)
    fast(x).sum().backward()  # with autograd: nn.Linear's own path, gradients as usual
    plain(x).sum().backward()
    torch.testing.assert_close(fast[2].weight.grad, plain[2].weight.grad)


def test_the_copy_follows_a_changed_weight():
    fast = model()
    use_inference_layout(fast)
    with torch.no_grad():
        fast[2].weight.mul_(2.0)  # an in-place update: the version counter moves
    x = torch.randn(3, 16)
    with torch.inference_mode():
        expected = nn.functional.linear(fast[1](fast[0](x)), fast[2].weight, fast[2].bias)
        torch.testing.assert_close(fast(x), expected)
    fresh = model()
    fast.load_state_dict(fresh.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), fresh(x))


def test_plain_layout_undoes_it():
    fast = model()
    use_inference_layout(fast)
    assert use_plain_layout(fast) == 1
    assert type(fast[2]) is nn.Linear and not hasattr(fast[2], "weight_t")


def test_loaded_models_decode_as_before_with_every_layer_in_the_new_layout(monkeypatch):
    """Through rnnkit.load (which applies the layout on the CPU), with the size floor lowered
    so the tiny fixture models' layers all take it: the outputs recorded before it existed."""
    from rnnkit.modules import inference_linear
    from tests.unit.test_old_checkpoints import CASES, INPUTS, assert_records, by_task, load

    monkeypatch.setattr(inference_linear, "MIN_OUT", 1)
    for name in by_task("translation"):
        model = load(name)
        assert any(type(m) is InferenceLinear for m in model.model.modules())
        assert model.translate(INPUTS["translation"], beam=5) == CASES[name]["translate"]
    for name in by_task("lm"):
        model = load(name)
        assert any(type(m) is InferenceLinear for m in model.model.modules())
        assert_records(model.score(INPUTS["lm"]), CASES[name]["score"])
