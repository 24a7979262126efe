"""The recurrent source encoder of the encoder–decoder models, and the bridge to the decoder.

:class:`RecurrentEncoder` embeds right-padded source sentences and runs a (bi)directional
:class:`~rnnkit.modules.recurrent.RecurrentStack` of any registered cell over them as packed
sequences, so padding never reaches the backward direction nor the final states. :class:`Bridge`
turns the encoder's final states into the decoder's initial state: copied as they are
(Sutskever et al. 2014; Luong et al. 2015), through a learned ``tanh`` layer (Cho et al. 2014;
Bahdanau et al. 2015, who start the decoder from ``tanh(W_s h⃖_1)``), or zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.modules.recurrent import RecurrentStack, RecurrentState, move_layer_keys


@dataclass(frozen=True)
class EncoderOut:
    """What the decoder reads: every position's output and the final state of every layer."""

    outputs: Tensor  # (B, S, dirs*H), zeros at padding
    final: RecurrentState  # (L*dirs, B, H), torch's layout (layer-major, forward then backward)
    mask: Tensor  # (B, S) bool, True on real tokens


def reverse_padded(tokens: Tensor, lengths: Tensor, keep_last: int = 1) -> Tensor:
    """Each row's first ``length - keep_last`` tokens in reverse order; the rest stays put.

    ``tokens`` (B, S), ``lengths`` (B,). With ``keep_last=1`` the final ``</s>`` stays last, as
    Sutskever et al. reverse the words of the source sentence.
    """
    s = tokens.size(1)
    pos = torch.arange(s, device=tokens.device).unsqueeze(0)  # (1, S)
    n = (lengths.to(tokens.device) - keep_last).clamp(min=0).unsqueeze(1)  # (B, 1)
    index = torch.where(pos < n, n - 1 - pos, pos)  # (B, S)
    return tokens.gather(1, index)


class RecurrentEncoder(nn.Module):
    """Embedding → a ``layers``-layer :class:`RecurrentStack` over packed rows → outputs, state.

    Any registered cell works; a fused one runs on torch's kernels as packed sequences, so padding
    never reaches the backward direction nor the final states. ``dropout`` acts on the
    embeddings, between layers and on the outputs; ``residual`` adds each layer's (dropped) input
    to its output where the sizes match (then the layers run one by one).
    """

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        padding_idx: int,
        embed_dim: int,
        hidden_size: int,
        layers: int,
        bidirectional: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        reverse_source: bool = False,
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, layers
        self.dirs = 2 if bidirectional else 1
        self.output_size = self.dirs * hidden_size
        self.residual, self.reverse_source = residual, reverse_source
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.drop = nn.Dropout(dropout)
        self.rnn = RecurrentStack(
            cell, embed_dim, hidden_size, layers, bidirectional=bidirectional, dropout=dropout,
            residual=residual, residual_dropped=True,
        )  # fmt: skip

    def upgrade_state_dict_named(self, state_dict: dict[str, Any], prefix: str) -> None:
        """Checkpoints before issue 12 kept the layers in ``rnns.{i}``: one torch module with every
        layer, or (residual) one per layer; rename them to the stack's (checkpoint loading)."""
        for i in range(self.num_layers):
            move_layer_keys(state_dict, f"{prefix}rnns.{i}.", f"{prefix}rnn.rnn.", first_layer=i)

    def forward(self, src_tokens: Tensor, src_lengths: Tensor) -> EncoderOut:
        """``src_tokens`` (B, S) right-padded, ``src_lengths`` (B,) ≥ 1 → :class:`EncoderOut`."""
        if self.reverse_source:
            src_tokens = reverse_padded(src_tokens, src_lengths)
        s = src_tokens.size(1)
        mask = (
            torch.arange(s, device=src_tokens.device) < src_lengths.to(src_tokens.device)[:, None]
        )
        x = self.drop(self.embed(src_tokens))  # (B, S, E)
        out, final = self.rnn(x, None, src_lengths)  # (B, S, dirs*H), zeros past each length
        return EncoderOut(self.drop(out), final, mask)


class Bridge(nn.Module):
    """Encoder final state (L_e*dirs, B, H_e) → decoder initial state (L_d, B, H_d).

    Decoder layer ``i`` starts from encoder layer ``max(0, L_e - L_d + i)`` (the top layers
    line up), both directions concatenated. ``copy`` needs dirs*H_e == H_d; ``linear`` learns
    h = tanh(W_h h_e) (and c = W_c c_e); ``zero`` starts from zeros.
    """

    def __init__(
        self, kind: str, enc_layers: int, enc_dirs: int, enc_hidden: int, dec_layers: int,
        dec_hidden: int, has_c: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        if kind not in ("copy", "linear", "zero"):
            raise RnnkitError(f"unknown bridge {kind!r} (valid: copy, linear, zero)")
        if kind == "copy" and enc_dirs * enc_hidden != dec_hidden:
            raise RnnkitError(
                f"--bridge copy needs the decoder hidden size ({dec_hidden}) to equal the "
                f"encoder's output size ({enc_dirs * enc_hidden}); use --bridge linear"
            )
        self.kind, self.has_c = kind, has_c
        self.enc_layers, self.enc_dirs, self.dec_layers = enc_layers, enc_dirs, dec_layers
        self.dec_hidden = dec_hidden
        if kind == "linear":
            self.w_h = nn.Linear(enc_dirs * enc_hidden, dec_hidden)
            self.w_c = nn.Linear(enc_dirs * enc_hidden, dec_hidden) if has_c else None

    def _layers(self, t: Tensor) -> Tensor:
        """(L_e*dirs, B, H_e) → (L_d, B, dirs*H_e), top layers first aligned."""
        le, d, b = self.enc_layers, self.enc_dirs, t.size(1)
        t = t.view(le, d, b, -1).permute(0, 2, 1, 3).reshape(le, b, -1)
        index = [max(0, le - self.dec_layers + i) for i in range(self.dec_layers)]
        return t[index]

    def forward(self, final: RecurrentState) -> RecurrentState:
        if self.kind == "zero":
            shape = (self.dec_layers, final.h.size(1), self.dec_hidden)
            zeros = final.h.new_zeros(shape)
            return RecurrentState(zeros, zeros.clone() if self.has_c else None)
        h = self._layers(final.h)
        c = self._layers(final.c) if self.has_c and final.c is not None else None
        if self.kind == "linear":
            h = torch.tanh(self.w_h(h))
            c = self.w_c(c) if self.w_c is not None and c is not None else None
        return RecurrentState(h.contiguous(), None if c is None else c.contiguous())
