"""A decode-time layout for the large linear layers (the output projection) on the CPU.

``nn.Linear`` computes ``x Wᵀ + b`` as ``addmm(b, x, W.t())`` with ``W`` (out, in) row-major,
so the product reads a transposed view. For the few rows of a decoding step (beam 5 of one
sentence: 5 rows) the CPU's GEMM is markedly faster when ``Wᵀ`` itself is contiguous, (in, out):
for 512 → 10,000, 1.0 → 0.55 ms at 5 rows and 3.4 → 2.3 ms at 40 (two threads), while from
about 256 rows on the usual layout is as fast or faster (``benchmarks/RESULTS.md``, "Decoding:
the output layer's layout"). :class:`InferenceLinear` keeps both: the parameter as it is (the
checkpoint, the state dict and training see nothing new) and a contiguous ``Wᵀ`` copy, a
non-persistent buffer used only for few-row products without autograd. The copy is remade if
the weight changes (its version counter moves), so a model trained after loading stays right.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

FEW_ROWS = 256  # below this many rows, the contiguous Wᵀ is faster (measured: see the docstring)
MIN_OUT = 2048  # only output-sized layers: for smaller ones the gain is within the noise


class InferenceLinear(nn.Linear):
    """``nn.Linear`` that multiplies few rows by a contiguous copy of ``Wᵀ`` (module docstring)."""

    weight_t: Tensor

    def forward(self, x: Tensor) -> Tensor:
        rows = x.numel() // max(1, self.in_features)
        if rows >= FEW_ROWS or self.training or torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        wt = self._transposed()
        flat = x.reshape(rows, self.in_features)
        y = flat @ wt if self.bias is None else torch.addmm(self.bias, flat, wt)
        return y.view(*x.shape[:-1], self.out_features)

    def _transposed(self) -> Tensor:
        version = self.weight._version
        if self.weight_t.device != self.weight.device or self._version_seen != version:
            with torch.no_grad():
                self.weight_t = self.weight.detach().t().contiguous()
            self._version_seen = version
        return self.weight_t


def use_inference_layout(model: nn.Module) -> int:
    """Turn ``model``'s output-sized ``nn.Linear`` layers (``out_features`` ≥ :data:`MIN_OUT`)
    into :class:`InferenceLinear` in place; returns how many. Parameters and state dict keys
    are unchanged; each such layer holds one more copy of its weight."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.out_features >= MIN_OUT:
            module.__class__ = InferenceLinear
            with torch.no_grad():
                wt = module.weight.detach().t().contiguous()
            module.register_buffer("weight_t", wt, persistent=False)
            module._version_seen = module.weight._version
            count += 1
    return count


def use_plain_layout(model: nn.Module) -> int:
    """Undo :func:`use_inference_layout` (back to ``nn.Linear``, copies dropped); returns how
    many layers it changed. For comparing the two layouts (``benchmarks/output_layout.py``)."""
    count = 0
    for module in model.modules():
        if type(module) is InferenceLinear:
            del module.weight_t
            del module._version_seen
            module.__class__ = nn.Linear
            count += 1
    return count
