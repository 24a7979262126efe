"""The recurrent layer models use: a stack of cells on the fastest path its options allow.

:class:`RecurrentStack` owns all layers' parameters under torch's names (``rnn.weight_ih_l{k}``…)
and picks one of three ways to run them:

1. **one fused call** (``nn.LSTM``/``GRU``/``RNN`` with all layers) when nothing sits between the
   layers but standard dropout — the Zaremba et al. path, with no per-step Python and no overhead
   over calling ``nn.LSTM`` yourself;
2. **fused per layer** (torch's kernel via ``torch._VF`` on one layer's weights) when locked
   dropout or residual connections sit between layers; DropConnect on W_hh stays fused by handing
   the kernel the dropped matrix;
3. **reference steps** (:class:`~rnnkit.modules.cells.ReferenceRNN`) for the Jordan cell, layer
   norm, or ``force_reference=True``.

The carried state is one explicit :class:`RecurrentState`. Under bf16 autocast on a CPU where
oneDNN has no bf16 the stack, and the encoders' fused layers, run in fp32 (:func:`fp32_recurrence`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit.modules.cells import CELL, ReferenceRNN, direction_suffixes
from rnnkit.modules.dropout import drop_weight, make_dropout

# On CPU torch runs the LSTM through oneDNN when it is enabled. For a single step (sampling,
# beam search) that is 2x faster than torch's own kernel with 128+ rows and 3x slower with one
# row (2 cores, 2x256 LSTM: 4.6 vs 9.9 ms at 640 rows, 0.37 vs 0.12 ms at 1; same results to
# 1e-6); the two break even near 32 rows. Steps with fewer rows run without it.
ONEDNN_MIN_ROWS = 32


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 here, its LSTM included: AVX-512 or later (as far as
    ``ONEDNN_MAX_CPU_ISA`` allows), then checked once by running a one-unit LSTM in bf16."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):  # an op this torch build lacks
        return False
    return lstm_runs_in_bf16()


def lstm_runs_in_bf16() -> bool:
    """Whether a fused LSTM runs forward and backward under bf16 autocast on this CPU.

    oneDNN's own check counts ISAs with bf16 conversions only (AVX2-VNNI-2) that its LSTM may
    not take; trying is the sure test. The global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        lstm = nn.LSTM(1, 1)
    x = torch.zeros(1, 1, 1, requires_grad=True)
    try:
        with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(x)
        out.float().sum().backward()
    except RuntimeError:  # "could not create a primitive descriptor for the LSTM ..."
        return False
    return True


def fp32_recurrence(device: torch.device) -> bool:
    """Whether fused recurrent calls on ``device`` leave bf16 autocast and run in fp32.

    On a CPU where oneDNN has no bf16 (AVX2 only, or ``ONEDNN_MAX_CPU_ISA=AVX2``) its LSTM has no
    bf16 kernel at all ("could not create a primitive descriptor"), and torch's own kernels
    (GRU, RNN, packed input, oneDNN disabled) do their bf16 matmuls emulated: 13x slower than
    fp32 (2x256 LSTM, 32x35 tokens, forward + backward on one AVX2 thread: 3.3 s against 0.25 s).
    fp32 there is exact and fast; the layers around the recurrence keep autocast. Autocast is
    per thread, so deciding from its state (and the cached CPU check) needs no global toggle.
    """
    return (
        device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and not cpu_has_bf16()
    )


def _fp32(x: Any) -> Any:
    """``x`` (a tensor, packed sequence, tuple of them or None) in fp32."""
    if isinstance(x, tuple) and not isinstance(x, PackedSequence):
        return tuple(_fp32(t) for t in x)
    return None if x is None else x.float()


def run_fused(rnn: Callable[..., Any], x: Tensor | PackedSequence, hx: Any = None) -> Any:
    """``rnn(x, hx)`` for a torch recurrent module, in fp32 where :func:`fp32_recurrence` says."""
    data = x.data if isinstance(x, PackedSequence) else x
    if not fp32_recurrence(data.device):
        return rnn(x, hx)
    with torch.autocast("cpu", enabled=False):
        return rnn(_fp32(x), _fp32(hx))


@dataclass(frozen=True)
class RecurrentState:
    """Hidden state of a recurrent stack between calls: ``h`` and (LSTM) ``c``, (L*dirs, B, H)."""

    h: Tensor
    c: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.h.size(1)

    def detach(self) -> RecurrentState:
        """The same values cut from the autograd graph (truncated BPTT between windows)."""
        return RecurrentState(self.h.detach(), None if self.c is None else self.c.detach())

    def reorder(self, order: Tensor) -> RecurrentState:
        """Select and reorder batch rows: ``order`` (B',) indexes the batch dim (beam search)."""
        pick = lambda t: t.index_select(1, order)  # noqa: E731
        return RecurrentState(pick(self.h), None if self.c is None else pick(self.c))

    def to(self, device: torch.device | str) -> RecurrentState:
        """The state on ``device``."""
        return RecurrentState(self.h.to(device), None if self.c is None else self.c.to(device))

    def float(self) -> RecurrentState:
        """The state in fp32."""
        return RecurrentState(self.h.float(), None if self.c is None else self.c.float())


_KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


class RecurrentStack(nn.Module):
    """``num_layers`` recurrent layers of one cell type over batch-first input.

    ``dropout`` acts between layers (standard, or one mask per sequence when ``locked_dropout``);
    ``residual`` adds each layer's input to its output where the sizes match; ``weight_drop`` is
    DropConnect on every W_hh (one mask per forward); ``layer_norm`` and the Jordan cells run on
    the reference path, as does everything with ``force_reference=True``.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        dropout: float = 0.0,
        locked_dropout: bool = False,
        residual: bool = False,
        layer_norm: bool = False,
        weight_drop: float = 0.0,
        force_reference: bool = False,
    ) -> None:
        super().__init__()
        self.cell_name, self.spec = cell, CELL.get(cell)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.bidirectional = bidirectional
        self.dirs = 2 if bidirectional else 1
        self.output_size = hidden_size * self.dirs
        self.residual, self.weight_drop = residual, weight_drop
        self.reference = force_reference or layer_norm or self.spec.fused_mode is None
        between_is_torch = not (locked_dropout or residual)  # what nn.LSTM's `dropout` can do
        self.single_call = not self.reference and between_is_torch
        self.between = make_dropout(0.0 if self.single_call else dropout, locked_dropout)
        self.rnn: nn.Module
        if self.reference:
            self.rnn = ReferenceRNN(
                cell, input_size, hidden_size, num_layers, bidirectional,
                layer_norm=layer_norm, weight_drop=weight_drop,
            )  # fmt: skip
        else:
            torch_dropout = dropout if self.single_call else 0.0
            self.rnn = self.spec.fused(
                input_size, hidden_size, num_layers, bidirectional, torch_dropout
            )

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> RecurrentState:
        """Zeros, (L*dirs, B, H), on ``device`` with ``dtype`` (default: the parameters')."""
        ref = next(self.parameters())
        shape = (self.num_layers * self.dirs, batch_size, self.hidden_size)
        zeros = lambda: torch.zeros(shape, device=device or ref.device, dtype=dtype or ref.dtype)  # noqa: E731
        return RecurrentState(zeros(), zeros() if self.spec.has_cell_state else None)

    def forward(
        self, x: Tensor, state: RecurrentState | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """``x`` (B, T, I) → output (B, T, dirs*H) and the state after the last step."""
        if state is None:
            state = self.init_state(x.size(0), x.device, x.dtype)
        if fp32_recurrence(x.device):  # bf16 autocast on a CPU without oneDNN bf16
            with torch.autocast("cpu", enabled=False):
                return self._forward_rows(x.float(), state.float())
        return self._forward_rows(x, state)

    def _forward_rows(self, x: Tensor, state: RecurrentState) -> tuple[Tensor, RecurrentState]:
        """:meth:`_forward`, without oneDNN for a single step of few rows (see ONEDNN_MIN_ROWS)."""
        onednn = torch.backends.mkldnn.enabled
        if onednn and x.device.type == "cpu" and x.size(1) == 1 and x.size(0) < ONEDNN_MIN_ROWS:
            # Not torch.backends.mkldnn.flags(): it also sets TF32 options and warns about them.
            torch.backends.mkldnn.enabled = False
            try:
                return self._forward(x, state)
            finally:
                torch.backends.mkldnn.enabled = onednn
        return self._forward(x, state)

    def _forward(self, x: Tensor, state: RecurrentState) -> tuple[Tensor, RecurrentState]:
        if self.single_call and not (self.training and self.weight_drop > 0):
            hx = (state.h, state.c) if self.spec.has_cell_state else state.h
            out, hx = self.rnn(x, hx)  # the fast path: exactly nn.LSTM(x, hx)
            return out, RecurrentState(*hx) if isinstance(hx, tuple) else RecurrentState(hx)
        if self.single_call:  # weight drop only: still one kernel call, with dropped W_hh
            out, h, c = self._fused(x, state.h, state.c, range(self.num_layers))
            return out, RecurrentState(h, c)
        return self._per_layer(x, state)

    def _per_layer(self, x: Tensor, state: RecurrentState) -> tuple[Tensor, RecurrentState]:
        """Run layer by layer so dropout masks and residuals can sit between layers."""
        hs, cs = [], []
        for k in range(self.num_layers):
            sl = slice(k * self.dirs, (k + 1) * self.dirs)
            h0, c0 = state.h[sl], None if state.c is None else state.c[sl]
            inp = x if k == 0 else self.between(x)
            if self.reference:
                y, h, c = self.rnn.run_layer(k, inp, h0, c0)  # (B, T, dirs*H)
            else:
                y, h, c = self._fused(inp, h0, c0, range(k, k + 1))
            x = y + x if self.residual and y.shape == x.shape else y
            hs.append(h)
            cs.append(c)
        c_n = torch.cat(cs) if self.spec.has_cell_state else None
        return x, RecurrentState(torch.cat(hs), c_n)

    def _fused(
        self, x: Tensor, h0: Tensor, c0: Tensor | None, layers: range
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """torch's kernel over ``layers`` with (weight-dropped) weights; h0, c0 (len*dirs, B, H)."""
        weights = []
        for k in layers:  # torch's flat order: per layer, per direction: w_ih, w_hh, b_ih, b_hh
            for sfx in direction_suffixes(self.bidirectional):
                w_hh = getattr(self.rnn, f"weight_hh_l{k}{sfx}")
                weights += [
                    getattr(self.rnn, f"weight_ih_l{k}{sfx}"),
                    drop_weight(w_hh, self.weight_drop, self.training),
                    getattr(self.rnn, f"bias_ih_l{k}{sfx}"),
                    getattr(self.rnn, f"bias_hh_l{k}{sfx}"),
                ]
        kernel = _KERNELS[self.spec.fused_mode]  # type: ignore[index]
        dropout = self.rnn.dropout if len(layers) > 1 else 0.0
        args = (weights, True, len(layers), dropout, self.training, self.bidirectional, True)
        if self.spec.has_cell_state:
            assert c0 is not None
            out, h, c = kernel(x, (h0, c0), *args)
            return out, h, c
        out, h = kernel(x, h0, *args)
        return out, h, None
