"""The one recurrent stack every model uses: layers of any registered cell, on the fastest path.

:class:`RecurrentStack` is the recurrence of the language model, of the seq2seq encoder and
decoder and of the tagger's sentence encoder. It owns all layers' parameters under torch's names
(``rnn.weight_ih_l{k}``…) and picks one of three ways to run them:

1. **one fused call** (``nn.LSTM``/``GRU``/``RNN`` with all layers) when nothing sits between the
   layers but standard dropout — the Zaremba et al. path, with no per-step Python and no overhead
   over calling ``nn.LSTM`` yourself;
2. **fused per layer** (torch's kernel via ``torch._VF`` on one layer's weights,
   :mod:`rnnkit.modules.fused`) when locked dropout or residual connections sit between layers;
   DropConnect on W_hh stays fused by handing the kernel the dropped matrix;
3. **reference steps** (:class:`~rnnkit.modules.reference.ReferenceRNN`) for cells without a
   fused kernel (Jordan, plugins), layer norm, or ``force_reference=True``.

Decoders that feed something back into every step (input feeding, Bahdanau's context) train
through :meth:`RecurrentStack.project_first` (the first layer's input projection of all steps in
one product) and :meth:`RecurrentStack.cell_step` (torch's LSTM/GRU cells), which beats one
kernel call per step when autograd is on (issue 16.2).

Each path reads right-padded rows as packed sequences when ``forward`` gets ``lengths``. The
carried state is one explicit :class:`RecurrentState`. Under bf16 autocast on a CPU where oneDNN
has no bf16 the stack runs in fp32 (:func:`fp32_recurrence`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.modules.cells import direction_suffixes, make_cell
from rnnkit.modules.dropout import drop_weight, make_dropout
from rnnkit.modules.fused import (
    LayerState,
    Packing,
    cell_step,
    project_first_layer,
    rest_weights,
    run_kernel,
    run_lstm_cells,
)
from rnnkit.modules.reference import ReferenceRNN

# On CPU torch runs the LSTM through oneDNN when it is enabled. For a single step (sampling,
# beam search) that is 2x faster than torch's own kernel with 128+ rows and 3x slower with one
# row (2 cores, 2x256 LSTM: 4.6 vs 9.9 ms at 640 rows, 0.37 vs 0.12 ms at 1; same results to
# 1e-6); the two break even near 32 rows. Steps with fewer rows run through torch's LSTM cell
# (rnnkit.modules.fused.run_lstm_cells): chosen per call, so no process-wide switch is touched.
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


def move_layer_keys(state_dict: dict[str, Any], old: str, new: str, first_layer: int = 0) -> None:
    """Rename the torch-named layer weights right under ``old`` (e.g. ``encoder.rnns.1.``) to
    ``new`` (``encoder.rnn.rnn.``), adding ``first_layer`` to each layer index, in place: loads
    checkpoints of models that held their fused layers outside a stack (before issue 12)."""
    for key in [k for k in state_dict if k.startswith(old) and "." not in k[len(old) :]]:
        layer = lambda m: f"_l{int(m[1]) + first_layer}"  # noqa: E731
        state_dict[new + re.sub(r"_l(\d+)", layer, key[len(old) :], count=1)] = state_dict.pop(key)


class RecurrentStack(nn.Module):
    """``num_layers`` recurrent layers of one registered cell over batch-first input.

    ``dropout`` acts between layers (standard, or one mask per sequence when ``locked_dropout``);
    ``residual`` adds each layer's input to its output where the sizes match (the input after the
    between-layer dropout with ``residual_dropped``, as the seq2seq encoder does);
    ``weight_drop`` is DropConnect on the cell's recurrent weights (one mask per forward);
    ``layer_norm``, cells without a fused kernel (Jordan, plugins) and ``force_reference=True``
    run on the reference path. ``forward`` with ``lengths`` reads right-padded rows as packed
    sequences (encoders, taggers). Decoders call ``forward`` with one time step and the carried
    :class:`RecurrentState`; that works for every cell.
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
        residual_dropped: bool = False,
        layer_norm: bool = False,
        weight_drop: float = 0.0,
        force_reference: bool = False,
    ) -> None:
        super().__init__()
        self.cell_name, self.spec = cell, make_cell(cell)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.bidirectional = bidirectional
        self.dirs = 2 if bidirectional else 1
        self.output_size = hidden_size * self.dirs
        self.residual, self.residual_dropped = residual, residual_dropped
        self.weight_drop = weight_drop
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
        self, x: Tensor, state: RecurrentState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """``x`` (B, T, I) → output (B, T, dirs*H) and the state after the last step.

        With ``lengths`` (B,) ≥ 1, row b has ``lengths[b]`` real steps: the outputs past them are
        zero, the state is the one after its last real step (forward) or its first (backward).
        """
        if state is None:
            state = self.init_state(x.size(0), x.device, x.dtype)
        packing = None if lengths is None else Packing(lengths.cpu(), x.size(1))
        if fp32_recurrence(x.device):  # bf16 autocast on a CPU without oneDNN bf16
            with torch.autocast("cpu", enabled=False):
                return self._forward(x.float(), state.float(), packing)
        return self._forward(x, state, packing)

    def _forward(
        self, x: Tensor, state: RecurrentState, packing: Packing | None
    ) -> tuple[Tensor, RecurrentState]:
        if self.single_call and not (self.training and self.weight_drop > 0):
            if packing is None and self._few_rows_one_step(x):  # torch's weights, in its order
                out, h, c = run_lstm_cells(
                    x, state.h, state.c, self.rnn._flat_weights,  # type: ignore[arg-type]
                    layers=self.num_layers, dropout=self.rnn.dropout, training=self.training,
                    bidirectional=self.bidirectional,
                )  # fmt: skip
                return out, RecurrentState(h, c)
            hx = (state.h, state.c) if self.spec.has_cell_state else state.h
            inp = x if packing is None else packing.pack(x)
            out, hx = self.rnn(inp, hx)  # the fast path: exactly nn.LSTM(x, hx)
            out = out if packing is None else packing.unpack(out)
            return out, RecurrentState(*hx) if isinstance(hx, tuple) else RecurrentState(hx)
        if self.single_call:  # weight drop only: still one kernel call, with dropped W_hh
            out, h, c = self._fused(x, state.h, state.c, range(self.num_layers), packing)
            return out, RecurrentState(h, c)
        return self._per_layer(x, state, packing)

    def _few_rows_one_step(self, x: Tensor) -> bool:
        """Whether ``x`` is one LSTM step of few rows on the CPU (see ONEDNN_MIN_ROWS)."""
        return (
            self.spec.fused_mode == "LSTM"
            and x.device.type == "cpu"
            and x.size(1) == 1
            and x.size(0) < ONEDNN_MIN_ROWS
        )

    def _per_layer(
        self, x: Tensor, state: RecurrentState, packing: Packing | None
    ) -> tuple[Tensor, RecurrentState]:
        """Run layer by layer so dropout masks and residuals can sit between layers."""
        hs, cs = [], []
        lengths = None if packing is None else packing.lengths
        for k in range(self.num_layers):
            sl = slice(k * self.dirs, (k + 1) * self.dirs)
            h0, c0 = state.h[sl], None if state.c is None else state.c[sl]
            inp = x if k == 0 else self.between(x)
            if self.reference:
                y, h, c = self.rnn.run_layer(k, inp, h0, c0, lengths)  # (B, T, dirs*H)
            else:
                y, h, c = self._fused(inp, h0, c0, range(k, k + 1), packing)
            skip = inp if self.residual_dropped else x
            x = y + skip if self.residual and y.shape == skip.shape else y
            hs.append(h)
            cs.append(c)
        c_n = torch.cat(cs) if self.spec.has_cell_state else None
        return x, RecurrentState(torch.cat(hs), c_n)

    def _fused(
        self, x: Tensor, h0: Tensor, c0: Tensor | None, layers: range, packing: Packing | None
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
        options = dict(
            layers=len(layers),
            dropout=self.rnn.dropout if len(layers) > 1 else 0.0,
            training=self.training,
            bidirectional=self.bidirectional,
        )
        if packing is None and c0 is not None and self._few_rows_one_step(x):
            return run_lstm_cells(x, h0, c0, weights, **options)  # type: ignore[arg-type]
        mode = self.spec.fused_mode
        assert mode is not None
        return run_kernel(mode, x, h0, c0, weights, packing=packing, **options)  # type: ignore[arg-type]

    # Step by step with the first layer's input projection hoisted (decoders that feed something
    # back into the recurrence: input feeding, Bahdanau's context). See rnnkit.modules.fused.

    def steps_by_cells(self, x: Tensor) -> bool:
        """Whether a decoder may run ``x`` (B, T, ·)'s T > 1 steps through :meth:`project_first`
        and :meth:`cell_step`: a fused one-direction LSTM or GRU stack on the CPU, without
        autocast or a training-time weight drop (those keep the kernel path)."""
        return (
            self.single_call
            and not self.bidirectional
            and self.spec.fused_mode in ("LSTM", "GRU")
            and x.device.type == "cpu"
            and x.size(1) > 1
            and not torch.is_autocast_enabled("cpu")
            and not (self.training and self.weight_drop > 0)
        )

    def project_first(self, x: Tensor) -> list[Tensor]:
        """The first layer's gate inputs from ``x`` (B, T, I'), the first I' input features, for
        all steps in one product: T tensors (B, G) (unbound: one backward op, not T)."""
        mode, weights = self.spec.fused_mode or "", self.rnn._flat_weights
        return list(project_first_layer(mode, x, weights).unbind(1))  # type: ignore[arg-type]

    def step_weights(self, rest: int) -> list[Tensor]:
        """The weights :meth:`cell_step` takes when ``rest`` input features come per step."""
        return rest_weights(self.rnn._flat_weights, rest)  # type: ignore[arg-type]

    def cell_step(
        self, gx: Tensor, rest: Tensor, hidden: list[LayerState], weights: list[Tensor]
    ) -> list[LayerState]:
        """One step from gate inputs ``gx`` (B, G) and the remaining input features ``rest``;
        ``hidden`` per layer (see :meth:`layer_states`), ``weights`` from :meth:`step_weights`."""
        return cell_step(
            self.spec.fused_mode or "", gx, rest, hidden, weights,
            dropout=self.rnn.dropout, training=self.training,  # type: ignore[arg-type]
        )  # fmt: skip

    @staticmethod
    def layer_states(state: RecurrentState) -> list[LayerState]:
        """``state`` as one (h, c) per layer, each (B, H)."""
        cs = [None] * state.h.size(0) if state.c is None else list(state.c.unbind(0))
        return list(zip(state.h.unbind(0), cs, strict=True))

    @staticmethod
    def stacked(hidden: list[LayerState]) -> RecurrentState:
        """Per-layer states back to one :class:`RecurrentState` (L, B, H)."""
        h = torch.stack([s[0] for s in hidden])
        c = None if hidden[0][1] is None else torch.stack([s[1] for s in hidden])  # type: ignore[misc]
        return RecurrentState(h, c)
