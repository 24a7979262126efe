"""The reference path: a stack of any cell's steps, in plain PyTorch, under torch's names.

:class:`ReferenceRNN` registers each layer and direction's parameters as the cell declares them
(``{name}_l{k}[_reverse]``, so a fused cell's state dict loads into ``nn.LSTM``/``GRU``/``RNN``
and back) and runs the steps one time step at a time. ``forward(x (B, T, I), hx)`` follows the
batch-first torch contract (``hx`` is ``(h, c)`` for a cell with a cell state, ``h`` otherwise,
each (L*dirs, B, H)), so a test can load one state dict into both and compare. Options torch
has no kernel for: ``layer_norm`` (the cell's LayerNorms, e.g. on the input-to-hidden and
hidden-to-hidden gate pre-activations and on the LSTM cell, as Ba et al. 2016) and
``weight_drop`` (DropConnect on the cell's recurrent weights, one mask per layer and direction
per call). With ``lengths`` a layer reads right-padded rows as packed sequences would: the
backward direction starts at each row's last token, the state stops at it, outputs past it are 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.modules.cells import CellWeights, Init, direction_suffixes, make_cell
from rnnkit.modules.dropout import drop_weight


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """(B, T) positions that reverse each row's first ``length`` steps and keep the rest; the
    permutation is its own inverse."""
    pos = torch.arange(steps, device=lengths.device).unsqueeze(0)  # (1, T)
    n = lengths.unsqueeze(1)  # (B, 1)
    return torch.where(pos < n, n - 1 - pos, pos)


def _reverse(x: Tensor, index: Tensor) -> Tensor:
    """``x`` (B, T, D) with its time steps permuted per row by ``index`` (B, T)."""
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class ReferenceRNN(nn.Module):
    """A stack of reference steps under torch's parameter names: a readable ``nn.LSTM``/``GRU``."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        layer_norm: bool = False,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.cell_name, self.cell = cell, make_cell(cell)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.layer_norm, self.weight_drop = layer_norm, weight_drop
        norms = self.cell.norms(hidden_size) if layer_norm else {}
        if layer_norm and not norms:
            raise RnnkitError(f"cell {cell!r} has no layer-normalized variant (--layer-norm)")
        dirs = 2 if bidirectional else 1
        self.inits: dict[str, Init] = {}
        self.names: dict[str, list[str]] = {}  # "l1_reverse" -> the cell's parameter names
        for k in range(num_layers):
            in_k = input_size if k == 0 else hidden_size * dirs
            for sfx in direction_suffixes(bidirectional):
                specs = self.cell.parameters(in_k, hidden_size)
                self.names[f"l{k}{sfx}"] = list(specs)
                for name, spec in specs.items():
                    full = f"{name}_l{k}{sfx}"
                    self.register_parameter(full, nn.Parameter(torch.empty(spec.shape)))
                    self.inits[full] = spec.init
                for name, size in norms.items():
                    self.add_module(f"{name}_l{k}{sfx}", nn.LayerNorm(size))
        self.norm_names = tuple(norms)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each parameter by its cell's initializer, in registration order (LayerNorms: 1, 0)."""
        for name, p in self.named_parameters(recurse=False):
            self.inits[name](p.data)

    def _weights(self, name: str) -> CellWeights:
        """The weights of layer/direction ``name`` (e.g. ``l1_reverse``) for one call."""
        drop = self.cell.recurrent_weights
        tensors = {}
        for base in self.names[name]:
            p = getattr(self, f"{base}_{name}")
            tensors[base] = drop_weight(p, self.weight_drop, self.training) if base in drop else p
        norms = {n: getattr(self, f"{n}_{name}") for n in self.norm_names}
        return CellWeights(tensors, norms)

    def run_layer(
        self, k: int, x: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Layer ``k`` over ``x`` (B, T, I) from ``h0``/``c0`` (dirs, B, H), rows of ``lengths``
        (B,) steps when given. Returns the output (B, T, dirs*H) and the final h, c (dirs, B, H).
        """
        outs, hs, cs = [], [], []
        for d, sfx in enumerate(direction_suffixes(self.bidirectional)):
            w = self._weights(f"l{k}{sfx}")
            gi = self.cell.project(x, w)  # (B, T, P): no recurrence, all steps in one call
            h, c = h0[d], None if c0 is None else c0[d]
            if lengths is None:
                y, h, c = self._steps(gi, h, c, w, backward=d == 1)
            else:
                index = reverse_index(lengths.to(x.device), x.size(1)) if d else None
                gi = gi if index is None else _reverse(gi, index)
                y, h, c = self._masked_steps(gi, h, c, w, lengths.to(x.device))
                y = y if index is None else _reverse(y, index)
            outs.append(y)  # (B, T, H)
            hs.append(h)
            cs.append(c)
        c_n = torch.stack(cs) if self.cell.has_cell_state else None  # type: ignore[arg-type]
        return torch.cat(outs, dim=-1), torch.stack(hs), c_n

    def _steps(
        self, gi: Tensor, h: Tensor, c: Tensor | None, w: CellWeights, backward: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Every step of ``gi`` (B, T, P), last to first when ``backward``."""
        steps = gi.size(1)
        ys: list[Tensor] = [h] * steps
        for t in reversed(range(steps)) if backward else range(steps):
            h, c = self.cell.step(gi[:, t], h, c, w)  # (B, H)
            ys[t] = h
        return torch.stack(ys, dim=1), h, c

    def _masked_steps(
        self, gi: Tensor, h: Tensor, c: Tensor | None, w: CellWeights, lengths: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Steps of ``gi`` (B, T, P) where row b stops after ``lengths[b]`` steps: its state
        stays, its outputs are zero."""
        ys = []
        for t in range(gi.size(1)):
            live = (t < lengths).unsqueeze(1)  # (B, 1)
            h_t, c_t = self.cell.step(gi[:, t], h, c, w)
            h = torch.where(live, h_t, h)
            c = None if c is None or c_t is None else torch.where(live, c_t, c)
            ys.append(torch.where(live, h_t, torch.zeros_like(h_t)))
        return torch.stack(ys, dim=1), h, c

    def forward(
        self, x: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """``x`` (B, T, I) → output (B, T, dirs*H) and the final state in torch's format."""
        dirs = 2 if self.bidirectional else 1
        if hx is None:
            zeros = x.new_zeros(self.num_layers * dirs, x.size(0), self.hidden_size)
            hx = (zeros, zeros) if self.cell.has_cell_state else zeros
        h0, c0 = hx if isinstance(hx, tuple) else (hx, None)
        hs, cs = [], []
        for k in range(self.num_layers):
            if k > 0:  # torch's `dropout`: standard dropout on each layer's output but the last
                x = F.dropout(x, self.dropout, self.training)
            sl = slice(k * dirs, (k + 1) * dirs)
            x, h, c = self.run_layer(k, x, h0[sl], None if c0 is None else c0[sl])
            hs.append(h)
            cs.append(c)
        h_n = torch.cat(hs)
        return x, (h_n, torch.cat(cs)) if self.cell.has_cell_state else h_n  # type: ignore[arg-type]
