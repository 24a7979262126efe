"""torch's fused recurrent kernels called on some of a stack's layers, with the weights given.

:class:`~rnnkit.modules.recurrent.RecurrentStack` keeps its fused weights in one ``nn.LSTM``
(``GRU``, ``RNN``) and calls the kernel behind it (``torch._VF``) on one layer at a time when
something sits between layers (locked dropout, residual connections), or on all layers with a
DropConnect-ed ``W_hh``. :func:`run_kernel` is that call, on a padded batch or on packed
sequences (:class:`Packing`). :func:`run_lstm_cells` computes the same thing for a single time
step through torch's own LSTM cell: bit for bit what the kernel gives with oneDNN turned off, and
never oneDNN, whose CPU LSTM is several times slower for one step of a few rows. Choosing it per
call replaces the process-wide ``torch.backends.mkldnn.enabled`` toggle, which two threads
decoding at once could leave switched off (or on) for each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

_KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


@dataclass(frozen=True)
class Packing:
    """Right-padded rows of ``lengths`` (B,) steps, run as packed sequences of ``steps`` max."""

    lengths: Tensor  # (B,) on the CPU, each >= 1
    steps: int

    def pack(self, x: Tensor) -> PackedSequence:
        """``x`` (B, T, D) → packed (rows sorted by length inside)."""
        return pack_padded_sequence(x, self.lengths, batch_first=True, enforce_sorted=False)

    def unpack(self, out: PackedSequence) -> Tensor:
        """Packed outputs → (B, T, D), zero past each row's length."""
        return pad_packed_sequence(out, batch_first=True, total_length=self.steps)[0]


def run_kernel(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: list[Tensor],
    *,
    layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
    packing: Packing | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """torch's ``mode`` kernel over ``x`` (B, T, I) from ``h0``/``c0`` (layers*dirs, B, H) with
    ``weights`` in torch's flat order (per layer, per direction: W_ih, W_hh, b_ih, b_hh).

    Returns the output (B, T, dirs*H) and the final h, c (layers*dirs, B, H); with ``packing``
    it reads packed sequences, exactly as ``nn.LSTM`` on a packed batch does.
    """
    kernel = _KERNELS[mode]
    hx = h0 if c0 is None else (h0, c0)
    if packing is None:
        args = (weights, True, layers, dropout, training, bidirectional, True)
        res = kernel(x, hx, *args)
    else:
        packed = packing.pack(x)
        order = packed.sorted_indices
        sort = lambda t: t.index_select(1, order)  # noqa: E731  rows in the packed order
        hx = sort(h0) if c0 is None else (sort(h0), sort(c0))
        args = (weights, True, layers, dropout, training, bidirectional)
        res = kernel(packed.data, packed.batch_sizes, hx, *args)
        unsort = lambda t: t.index_select(1, packed.unsorted_indices)  # noqa: E731
        out = packing.unpack(
            PackedSequence(res[0], packed.batch_sizes, order, packed.unsorted_indices)
        )
        res = (out, *(unsort(t) for t in res[1:]))
    if c0 is None:
        return res[0], res[1], None
    return res[0], res[1], res[2]


def run_lstm_cells(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: list[Tensor],
    *,
    layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`run_kernel` for an LSTM and one time step, ``x`` (B, 1, I), through torch's LSTM
    cell: the same numbers (and gradients, and dropout draws) as its kernel without oneDNN."""
    dirs = 2 if bidirectional else 1
    inp = x[:, 0]  # (B, I)
    hs, cs = [], []
    for k in range(layers):
        if k > 0:  # as the kernel: dropout on every layer's output but the last
            inp = F.dropout(inp, dropout, training)
        outs = []
        for d in range(dirs):
            i = k * dirs + d
            w_ih, w_hh, b_ih, b_hh = weights[4 * i : 4 * i + 4]
            h, c = _VF.lstm_cell(inp, (h0[i], c0[i]), w_ih, w_hh, b_ih, b_hh)  # (B, H)
            outs.append(h)
            hs.append(h)
            cs.append(c)
        inp = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
    return inp.unsqueeze(1), torch.stack(hs), torch.stack(cs)


_CELLS = {"LSTM": _VF.lstm_cell, "GRU": _VF.gru_cell}
LayerState = tuple[Tensor, Tensor | None]  # one layer's h (B, H) and, for an LSTM, c


def project_first_layer(mode: str, x: Tensor, weights: list[Tensor]) -> Tensor:
    """The first layer's gate inputs from ``x`` (B, T, I'), the first I' of its input features,
    for all T steps in one matrix product: (B, T, G). ``weights`` are torch's flat ones.

    Both biases fold in for an LSTM; a GRU's b_hh stays in the step (it sits inside r ⊙ (·)).
    The rest of the input (input feeding, attention context) comes per step in
    :func:`cell_step`; W_ih is split by slicing, so the parameters stay as they are.
    """
    w_ih, _, b_ih, b_hh = weights[:4]
    bias = b_ih + b_hh if mode == "LSTM" else b_ih
    return F.linear(x, w_ih[:, : x.size(-1)], bias)


def cell_step(
    mode: str,
    gx: Tensor,
    rest: Tensor,
    hidden: list[LayerState],
    weights: list[Tensor],
    *,
    dropout: float,
    training: bool,
) -> list[LayerState]:
    """One time step of a one-direction LSTM/GRU stack through torch's cells, the first layer's
    gate inputs ``gx`` (B, G) given (:func:`project_first_layer`) and ``rest`` (B, I - I') the
    input features they lack. ``weights`` are torch's flat ones with the first W_ih cut to its
    last I - I' columns (:func:`rest_weights`, sliced once per sequence, not per step: each
    slice costs a zero-filled full-size gradient in backward). ``hidden`` holds each layer's
    state; returns the new ones (the top layer's h is the output). Dropout sits on every layer's
    output but the last, as in the kernel, with the same draws.

    With a few dozen rows and autograd on, this is faster than one oneDNN kernel call per step
    (which zero-fills and accumulates the weight gradients on every call).
    """
    cell, new = _CELLS[mode], []
    inp = rest
    for k, (h, c) in enumerate(hidden):
        w_ih, w_hh, b_ih, b_hh = weights[4 * k : 4 * k + 4]
        if k == 0:  # gx as a per-row bias: W_ih[:, :I'] x_t (+ the biases), computed before
            b_ih, b_hh = gx, None if mode == "LSTM" else b_hh
        else:
            inp = F.dropout(inp, dropout, training)
        state = cell(inp, h if c is None else (h, c), w_ih, w_hh, b_ih, b_hh)
        new.append((state, None) if c is None else state)
        inp = new[-1][0]
    return new


def rest_weights(weights: list[Tensor], rest: int) -> list[Tensor]:
    """torch's flat weights with the first layer's W_ih cut to its last ``rest`` columns (a view:
    gradients flow back into the parameter)."""
    w_ih = weights[0]
    return [w_ih[:, w_ih.size(1) - rest :], *weights[1:]]
