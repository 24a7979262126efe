"""Recurrent cells as registered building blocks: textbook single-step equations + fused kernels.

Each entry of :data:`CELL` is a :class:`Cell`: its reference step (the equations as printed, one
time step, readable) and, where PyTorch has one, the fused kernel that computes the same thing
(``nn.LSTM``/``nn.GRU``/``nn.RNN``: cuDNN on GPU, oneDNN on CPU). :class:`ReferenceRNN` runs a
stack of reference steps with the *same parameter names and layouts* as torch's modules
(``weight_ih_l{k}[_reverse]``, gate order i,f,g,o for LSTM and r,z,n for GRU), so one state dict
loads in both and the tests can check the reference against the kernel. The reference path also
carries what a fused kernel cannot: the Jordan cell, layer-normalized gates and DropConnect.

Elman vs Jordan. An Elman (1990) network copies its *hidden layer* into the context units:
h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). A Jordan (1986) network copies its *output*
instead: h_t = act(W_ih x_t + b_ih + W_hh y_{t-1} + b_hh), y_t = act(W_hy h_t + b_hy). Here y is
the layer's output projection (size H, so layers stack), and the state carried between steps is
y, not h — the contrast the seed material draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.modules.dropout import drop_weight
from rnnkit.registry import Registry


@dataclass(frozen=True)
class StepWeights:
    """The recurrent weights one step needs, for one layer and direction."""

    w_hh: Tensor  # (G*H, H), DropConnect already applied
    b_hh: Tensor  # (G*H,)
    ln_hh: nn.Module | None = None  # LayerNorm on the G*H hidden-to-hidden pre-activations
    ln_c: nn.Module | None = None  # LSTM only: LayerNorm on the cell before its tanh
    w_hy: Tensor | None = None  # Jordan only: output projection (H, H)
    b_hy: Tensor | None = None  # Jordan only: (H,)


# step(gi (B, G*H) = W_ih x_t + b_ih, h (B, H), c (B, H) | None, weights) -> (h_t, c_t | None)
Step = Callable[[Tensor, Tensor, Tensor | None, StepWeights], tuple[Tensor, Tensor | None]]


def _hidden_pre(h: Tensor, w: StepWeights) -> Tensor:
    """W_hh h + b_hh (B, G*H), layer-normalized when the cell has LayerNorm."""
    gh = F.linear(h, w.w_hh, w.b_hh)
    return gh if w.ln_hh is None else w.ln_hh(gh)


def elman_step(
    gi: Tensor, h: Tensor, c: Tensor | None, w: StepWeights, act: Callable[[Tensor], Tensor]
) -> tuple[Tensor, None]:
    """Elman: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    return act(gi + _hidden_pre(h, w)), None


def jordan_step(
    gi: Tensor, y: Tensor, c: Tensor | None, w: StepWeights, act: Callable[[Tensor], Tensor]
) -> tuple[Tensor, None]:
    """Jordan: h_t = act(W_ih x_t + b_ih + W_hh y_{t-1} + b_hh); y_t = act(W_hy h_t + b_hy).

    The carried state is the previous *output* y_{t-1}; h_t itself is not kept between steps.
    """
    assert w.w_hy is not None
    h = act(gi + _hidden_pre(y, w))  # (B, H)
    return act(F.linear(h, w.w_hy, w.b_hy)), None


def lstm_step(gi: Tensor, h: Tensor, c: Tensor | None, w: StepWeights) -> tuple[Tensor, Tensor]:
    """LSTM: [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;
    c_t = σ(f) c_{t-1} + σ(i) tanh(g); h_t = σ(o) tanh(c_t)."""
    assert c is not None
    i, f, g, o = (gi + _hidden_pre(h, w)).chunk(4, dim=1)  # each (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c if w.ln_c is None else w.ln_c(c))
    return h, c


def gru_step(gi: Tensor, h: Tensor, c: Tensor | None, w: StepWeights) -> tuple[Tensor, None]:
    """GRU as torch defines it: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h_t = (1 - z) n + z h_{t-1}."""
    i_r, i_z, i_n = gi.chunk(3, dim=1)  # each (B, H)
    h_r, h_z, h_n = _hidden_pre(h, w).chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, None


@dataclass(frozen=True)
class Cell:
    """A registered cell: its reference step, gate count and (optional) fused torch kernel."""

    step: Step
    gates: int  # rows of W_ih per hidden unit: 1 (Elman/Jordan), 4 (LSTM), 3 (GRU)
    fused_mode: str | None  # torch's RNN mode ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"); None: none
    has_cell_state: bool = False  # LSTM's c
    feeds_back_output: bool = False  # Jordan: has W_hy and carries y instead of h

    def fused(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> nn.RNNBase:
        """The batch-first torch module computing this cell, with between-layer ``dropout``."""
        if self.fused_mode is None:
            raise ValueError("this cell has no fused kernel")
        kinds = {
            "LSTM": nn.LSTM,
            "GRU": nn.GRU,
            "RNN_TANH": partial(nn.RNN, nonlinearity="tanh"),
            "RNN_RELU": partial(nn.RNN, nonlinearity="relu"),
        }
        return kinds[self.fused_mode](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns on dropout with one layer
            bidirectional=bidirectional,
        )


CELL: Registry[Cell] = Registry("cell")
CELL.add("lstm", Cell(lstm_step, 4, "LSTM", has_cell_state=True), "LSTM (i, f, g, o gates)")
CELL.add("gru", Cell(gru_step, 3, "GRU"), "GRU (r, z, n as torch defines it)")
CELL.add("rnn_tanh", Cell(partial(elman_step, act=torch.tanh), 1, "RNN_TANH"), "Elman RNN, tanh")
CELL.add("rnn_relu", Cell(partial(elman_step, act=torch.relu), 1, "RNN_RELU"), "Elman RNN, relu")
for _act in ("tanh", "relu"):
    CELL.add(
        f"jordan_{_act}",
        Cell(partial(jordan_step, act=getattr(torch, _act)), 1, None, feeds_back_output=True),
        f"Jordan RNN, {_act} (previous output fed back; reference path only)",
    )


def direction_suffixes(bidirectional: bool) -> tuple[str, ...]:
    """torch's parameter-name suffixes per direction: ``""`` and ``"_reverse"``."""
    return ("", "_reverse") if bidirectional else ("",)


class ReferenceRNN(nn.Module):
    """A stack of reference steps under torch's parameter names: a readable ``nn.LSTM``/``GRU``.

    ``forward(x (B, T, I), hx)`` follows the batch-first torch contract (``hx`` is ``(h, c)`` for
    LSTM, ``h`` otherwise, each (L*dirs, B, H)), so a test can load one state dict into both and
    compare. Options torch has no kernel for: ``layer_norm`` (LayerNorm on the input-to-hidden and
    hidden-to-hidden gate pre-activations, and on the LSTM cell, as Ba et al. 2016) and
    ``weight_drop`` (DropConnect on W_hh, one mask per layer and direction per call).
    """

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
        self.cell_name, self.cell = cell, CELL.get(cell)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.layer_norm, self.weight_drop = layer_norm, weight_drop
        gh = self.cell.gates * hidden_size
        dirs = 2 if bidirectional else 1
        for k in range(num_layers):
            in_k = input_size if k == 0 else hidden_size * dirs
            for sfx in direction_suffixes(bidirectional):
                shapes = {"weight_ih": (gh, in_k), "weight_hh": (gh, hidden_size)}
                shapes |= {"bias_ih": (gh,), "bias_hh": (gh,)}
                if self.cell.feeds_back_output:
                    shapes |= {"weight_hy": (hidden_size, hidden_size), "bias_hy": (hidden_size,)}
                for name, shape in shapes.items():
                    self.register_parameter(f"{name}_l{k}{sfx}", nn.Parameter(torch.empty(shape)))
                if layer_norm:
                    self.add_module(f"ln_ih_l{k}{sfx}", nn.LayerNorm(gh))
                    self.add_module(f"ln_hh_l{k}{sfx}", nn.LayerNorm(gh))
                    if self.cell.has_cell_state:
                        self.add_module(f"ln_c_l{k}{sfx}", nn.LayerNorm(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's RNN init: every recurrent weight and bias uniform ±1/√H (LayerNorms: 1 and 0)."""
        std = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -std, std)

    def _step_weights(self, name: str) -> StepWeights:
        """The recurrent weights of layer/direction ``name`` (e.g. ``l1_reverse``) for one call."""
        get = partial(getattr, self)
        return StepWeights(
            w_hh=drop_weight(get(f"weight_hh_{name}"), self.weight_drop, self.training),
            b_hh=get(f"bias_hh_{name}"),
            ln_hh=get(f"ln_hh_{name}") if self.layer_norm else None,
            ln_c=get(f"ln_c_{name}") if self.layer_norm and self.cell.has_cell_state else None,
            w_hy=get(f"weight_hy_{name}") if self.cell.feeds_back_output else None,
            b_hy=get(f"bias_hy_{name}") if self.cell.feeds_back_output else None,
        )

    def run_layer(
        self, k: int, x: Tensor, h0: Tensor, c0: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Layer ``k`` over ``x`` (B, T, I) from ``h0``/``c0`` (dirs, B, H).

        Returns the output (B, T, dirs*H) and the final h, c (dirs, B, H).
        """
        outs, hs, cs = [], [], []
        steps = x.size(1)
        for d, sfx in enumerate(direction_suffixes(self.bidirectional)):
            name = f"l{k}{sfx}"
            w = self._step_weights(name)
            # The input projection has no recurrence: one matmul for all time steps.
            gi = F.linear(x, getattr(self, f"weight_ih_{name}"), getattr(self, f"bias_ih_{name}"))
            if self.layer_norm:
                gi = getattr(self, f"ln_ih_{name}")(gi)  # (B, T, G*H)
            h, c = h0[d], None if c0 is None else c0[d]
            ys: list[Tensor] = [h] * steps
            for t in reversed(range(steps)) if d else range(steps):
                h, c = self.cell.step(gi[:, t], h, c, w)  # (B, H)
                ys[t] = h
            outs.append(torch.stack(ys, dim=1))  # (B, T, H)
            hs.append(h)
            cs.append(c)
        c_n = torch.stack(cs) if self.cell.has_cell_state else None
        return torch.cat(outs, dim=-1), torch.stack(hs), c_n

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
        return x, (h_n, torch.cat(cs)) if self.cell.has_cell_state else h_n
