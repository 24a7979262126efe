"""Recurrent cells as registered building blocks: each declares its parameters and one step.

A cell is a subclass of :class:`Cell` registered in :data:`CELL` (``@CELL.register("name")`` on
the class). It declares the parameters of one layer and direction (:meth:`Cell.parameters`:
name → shape and initializer), the part of the step without recurrence that runs over all time
steps at once (:meth:`Cell.project`, by default ``W_ih x + b_ih``), and the step itself
(:meth:`Cell.step`). :class:`~rnnkit.modules.recurrent.RecurrentStack` builds layers of any
cell from these, so every registered cell works in every model. A cell whose equations match a
torch kernel names it in ``fused_mode`` (``nn.LSTM``/``nn.GRU``/``nn.RNN``: cuDNN on GPU, oneDNN
on CPU) and then declares torch's parameter names and layouts (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``; gate order i,f,g,o for LSTM and r,z,n for GRU), so one state dict loads
in both paths and the tests can check the reference steps against the kernel. The reference path
also carries what a fused kernel cannot: the Jordan cell, layer-normalized gates (a cell lists
its LayerNorms in :meth:`Cell.norms`) and DropConnect (on the weights in ``recurrent_weights``).

Elman vs Jordan. An Elman (1990) network copies its *hidden layer* into the context units:
h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). A Jordan (1986) network copies its *output*
instead: h_t = act(W_ih x_t + b_ih + W_hh y_{t-1} + b_hh), y_t = act(W_hy h_t + b_hy). Here y is
the layer's output projection (size H, so layers stack), and the state carried between steps is
y, not h — the contrast the seed material draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.registry import Registry

Init = Callable[[Tensor], object]  # fills a parameter in place


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of one layer and direction: its shape and in-place initializer."""

    shape: tuple[int, ...]
    init: Init


def uniform_init(hidden_size: int) -> Init:
    """torch's RNN init: uniform in ±1/√H."""
    bound = 1.0 / math.sqrt(hidden_size)
    return partial(nn.init.uniform_, a=-bound, b=bound)


def torch_layout(input_size: int, hidden_size: int, gates: int) -> dict[str, ParamSpec]:
    """torch's recurrent parameters for ``gates`` gates, in its order: W_ih, W_hh, b_ih, b_hh."""
    gh, init = gates * hidden_size, uniform_init(hidden_size)
    return {
        "weight_ih": ParamSpec((gh, input_size), init),
        "weight_hh": ParamSpec((gh, hidden_size), init),
        "bias_ih": ParamSpec((gh,), init),
        "bias_hh": ParamSpec((gh,), init),
    }


class CellWeights:
    """One layer and direction's weights for one call: tensors (DropConnect already applied to
    the cell's ``recurrent_weights``) and the LayerNorms of a layer-normalized stack."""

    def __init__(self, tensors: Mapping[str, Tensor], norms: Mapping[str, nn.Module]) -> None:
        self.tensors, self.norms = tensors, norms

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]

    def norm(self, name: str, x: Tensor) -> Tensor:
        """``x`` through the LayerNorm ``name``, or unchanged when the stack has none."""
        module = self.norms.get(name)
        return x if module is None else module(x)


class Cell:
    """Base class of a recurrent cell: parameters, input projection, one step, fused kernel.

    Subclasses override :meth:`parameters` and :meth:`step`; the rest has defaults. The carried
    state is ``h`` (B, H) and, when ``has_cell_state``, a second tensor ``c`` (B, H) (LSTM's
    cell); the step's new ``h`` is also the layer's output at that time step.
    """

    fused_mode: ClassVar[str | None] = None  # "LSTM", "GRU", "RNN_TANH", "RNN_RELU"; None: none
    has_cell_state: ClassVar[bool] = False  # carries c besides h
    recurrent_weights: ClassVar[tuple[str, ...]] = ("weight_hh",)  # what DropConnect drops

    def parameters(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        """The parameters of one layer and direction, in registration (and init) order."""
        raise NotImplementedError

    def norms(self, hidden_size: int) -> dict[str, int]:
        """LayerNorms of the layer-normalized variant: name → normalized size ({}: none)."""
        return {}

    def project(self, x: Tensor, w: CellWeights) -> Tensor:
        """The input part of every step at once: ``x`` (B, T, I) → (B, T, P)."""
        return w.norm("ln_ih", F.linear(x, w["weight_ih"], w["bias_ih"]))

    def step(
        self, gi: Tensor, h: Tensor, c: Tensor | None, w: CellWeights
    ) -> tuple[Tensor, Tensor | None]:
        """One time step: ``gi`` (B, P) from :meth:`project`, state ``h``, ``c`` (B, H) →
        the new ``h`` (B, H) and ``c`` (``None`` without a cell state)."""
        raise NotImplementedError

    @classmethod
    def fused(
        cls, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool,
        dropout: float,
    ) -> nn.RNNBase:  # fmt: skip
        """The batch-first torch module computing this cell, with between-layer ``dropout``."""
        kinds = {
            "LSTM": nn.LSTM,
            "GRU": nn.GRU,
            "RNN_TANH": partial(nn.RNN, nonlinearity="tanh"),
            "RNN_RELU": partial(nn.RNN, nonlinearity="relu"),
        }
        if cls.fused_mode not in kinds:
            raise ValueError(f"{cls.__name__} has no fused kernel")
        return kinds[cls.fused_mode](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns on dropout with one layer
            bidirectional=bidirectional,
        )


CELL: Registry[type[Cell]] = Registry("cell")


def make_cell(name: str) -> Cell:
    """The cell registered as ``name``; an unknown name, or an entry that is not a :class:`Cell`
    subclass (or instance), is a one-line error."""
    obj = CELL.get(name)
    if isinstance(obj, Cell):
        return obj
    if isinstance(obj, type) and issubclass(obj, Cell):
        return obj()
    raise RnnkitError(
        f"cell {name!r} is registered as {type(obj).__name__} {obj!r}, not a subclass of "
        "rnnkit.modules.cells.Cell (see docs/overview.md, 'a recurrent cell')"
    )


def _hidden_pre(h: Tensor, w: CellWeights) -> Tensor:
    """W_hh h + b_hh (B, G*H), layer-normalized when the stack has LayerNorm."""
    return w.norm("ln_hh", F.linear(h, w["weight_hh"], w["bias_hh"]))


@CELL.register("lstm", "LSTM (i, f, g, o gates)")
class LSTMCell(Cell):
    """LSTM: [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;
    c_t = σ(f) c_{t-1} + σ(i) tanh(g); h_t = σ(o) tanh(c_t)."""

    fused_mode = "LSTM"
    has_cell_state = True

    def parameters(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        return torch_layout(input_size, hidden_size, 4)

    def norms(self, hidden_size: int) -> dict[str, int]:
        return {"ln_ih": 4 * hidden_size, "ln_hh": 4 * hidden_size, "ln_c": hidden_size}

    def step(
        self, gi: Tensor, h: Tensor, c: Tensor | None, w: CellWeights
    ) -> tuple[Tensor, Tensor]:
        assert c is not None
        i, f, g, o = (gi + _hidden_pre(h, w)).chunk(4, dim=1)  # each (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(w.norm("ln_c", c)), c


@CELL.register("gru", "GRU (r, z, n as torch defines it)")
class GRUCell(Cell):
    """GRU as torch defines it: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h_t = (1 - z) n + z h_{t-1}."""

    fused_mode = "GRU"

    def parameters(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        return torch_layout(input_size, hidden_size, 3)

    def norms(self, hidden_size: int) -> dict[str, int]:
        return {"ln_ih": 3 * hidden_size, "ln_hh": 3 * hidden_size}

    def step(self, gi: Tensor, h: Tensor, c: Tensor | None, w: CellWeights) -> tuple[Tensor, None]:
        i_r, i_z, i_n = gi.chunk(3, dim=1)  # each (B, H)
        h_r, h_z, h_n = _hidden_pre(h, w).chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, None


@CELL.register("rnn_tanh", "Elman RNN, tanh")
class ElmanCell(Cell):
    """Elman: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    fused_mode = "RNN_TANH"
    act: ClassVar[Callable[[Tensor], Tensor]] = staticmethod(torch.tanh)

    def parameters(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        return torch_layout(input_size, hidden_size, 1)

    def norms(self, hidden_size: int) -> dict[str, int]:
        return {"ln_ih": hidden_size, "ln_hh": hidden_size}

    def step(self, gi: Tensor, h: Tensor, c: Tensor | None, w: CellWeights) -> tuple[Tensor, None]:
        return self.act(gi + _hidden_pre(h, w)), None


@CELL.register("rnn_relu", "Elman RNN, relu")
class ElmanReluCell(ElmanCell):
    """Elman with relu: h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    fused_mode = "RNN_RELU"
    act = staticmethod(torch.relu)


@CELL.register("jordan_tanh", "Jordan RNN, tanh (previous output fed back; reference path only)")
class JordanCell(ElmanCell):
    """Jordan: h_t = act(W_ih x_t + b_ih + W_hh y_{t-1} + b_hh); y_t = act(W_hy h_t + b_hy).

    The carried state is the previous *output* y_{t-1}; h_t itself is not kept between steps.
    """

    fused_mode = None

    def parameters(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        init = uniform_init(hidden_size)
        return torch_layout(input_size, hidden_size, 1) | {
            "weight_hy": ParamSpec((hidden_size, hidden_size), init),
            "bias_hy": ParamSpec((hidden_size,), init),
        }

    def step(self, gi: Tensor, y: Tensor, c: Tensor | None, w: CellWeights) -> tuple[Tensor, None]:
        h = self.act(gi + _hidden_pre(y, w))  # (B, H)
        return self.act(F.linear(h, w["weight_hy"], w["bias_hy"])), None


@CELL.register("jordan_relu", "Jordan RNN, relu (previous output fed back; reference path only)")
class JordanReluCell(JordanCell):
    """Jordan with relu activations."""

    act = staticmethod(torch.relu)


def direction_suffixes(bidirectional: bool) -> tuple[str, ...]:
    """torch's parameter-name suffixes per direction: ``""`` and ``"_reverse"``."""
    return ("", "_reverse") if bidirectional else ("",)
