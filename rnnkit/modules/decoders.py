"""The decoder styles of the encoder–decoder models: one class per style, one typed state each.

Every style turns embedded previous target tokens (B, T, E) and its state into output features
(B, T, F) and the next state; ``T`` is the whole target while training and 1 while decoding, and
both go through the same :meth:`RecurrentDecoder.forward`, so incremental decoding equals the
full pass by construction. The encoder, bridge, embedding and output layers are the model's
(:class:`~rnnkit.models.seq2seq.Seq2Seq`) and shared by all styles; a style owns its recurrence,
its attention and how it reads out features:

- :class:`PlainDecoder` (Sutskever et al. 2014): y_{t-1} → RNN → features h_t.
- :class:`ChoDecoder` (Cho et al. 2014): the encoder summary c is fed to every step and to the
  readout tanh(W[s_t; E y_{t-1}; c]).
- :class:`BahdanauDecoder` (Bahdanau et al. 2015): c_t = attend(s_{t-1}), then
  s_t = RNN([E y_{t-1}; c_t], s_{t-1}) and the readout as above.
- :class:`LuongDecoder` (Luong et al. 2015): h_t = RNN(E y_{t-1} [; h̃_{t-1} with input
  feeding]), c_t = attend(h_t), features h̃_t = tanh(W_c[c_t; h_t]).

:func:`build_decoder` picks the style: no attention → plain or Cho; with an attention score, the
score's declared query (:func:`~rnnkit.modules.attention.score_query`) → Bahdanau (``previous``)
or Luong (``current``), so a newly registered score works with the decoders that can use it and
is refused (at build time) where none can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.generation.decoder import BatchState
from rnnkit.modules.attention import (
    Attention,
    AttentionalHidden,
    PreparedKeys,
    score_query,
    scores_querying,
)
from rnnkit.modules.encoder import EncoderOut
from rnnkit.modules.recurrent import RecurrentStack, RecurrentState


@dataclass(frozen=True)
class DecoderSpec:
    """What a decoder style is built from: the model's decoder options and the encoder's sizes."""

    cell: str
    embed_dim: int  # E, the target embedding size
    hidden_size: int  # H
    layers: int
    key_size: int  # K, the encoder's output size (dirs × encoder hidden)
    encoder_dirs: int  # 1 or 2
    dropout: float = 0.0
    residual: bool = False
    attention: str = "none"
    attention_mode: str = "global"
    attention_window: int = 10
    input_feeding: bool = False
    feed_context: bool = False
    copy: bool = False  # keep each step's context and query for a pointer-generator


@dataclass(frozen=True)
class DecoderOut:
    """T steps of output; ``context`` and ``query`` only when a copy layer needs them."""

    features: Tensor  # (B, T, F)
    attention: Tensor | None = None  # (B, T, S)
    context: Tensor | None = None  # (B, T, K) c_t
    query: Tensor | None = None  # (B, T, H) h_t


@dataclass(frozen=True)
class PlainState(BatchState):
    """Sutskever's state: the recurrent stack's hidden state (L, B, H)."""

    hidden: RecurrentState


@dataclass(frozen=True)
class ChoState(BatchState):
    """Cho's state: the hidden state and the encoder summary c (B, K) fed to every step."""

    hidden: RecurrentState
    context: Tensor


@dataclass(frozen=True)
class AttentionState(BatchState):
    """An attention decoder's state: hidden state, the prepared keys and each row's step (B,).

    ``input_feed`` (B, H) is Luong's h̃_{t-1} with input feeding, else None.
    """

    hidden: RecurrentState
    keys: PreparedKeys
    step: Tensor
    input_feed: Tensor | None = None


StateT = TypeVar("StateT", bound=BatchState)


class RecurrentDecoder(nn.Module, Generic[StateT]):
    """A decoder style: :meth:`start` from the encoder, :meth:`forward` over T target steps."""

    feature_size: int  # F, the width of :attr:`DecoderOut.features`

    def start(self, enc: EncoderOut, hidden: RecurrentState) -> StateT:
        """The state before the first target step, from the encoder and the bridged ``hidden``."""
        raise NotImplementedError

    def forward(self, emb: Tensor, state: StateT) -> tuple[DecoderOut, StateT]:
        """Embedded previous tokens ``emb`` (B, T, E) → :class:`DecoderOut` and the state after
        step T."""
        raise NotImplementedError


def _stack(spec: DecoderSpec, input_size: int) -> RecurrentStack:
    return RecurrentStack(spec.cell, input_size, spec.hidden_size, spec.layers,
                          dropout=spec.dropout, residual=spec.residual)  # fmt: skip


def _by_cells(rnn: nn.Module, emb: Tensor) -> bool:
    """Whether to step ``rnn`` through its cells with the first layer's input projection hoisted
    (:meth:`RecurrentStack.steps_by_cells`); a stack swapped for another (int8) keeps its own."""
    return isinstance(rnn, RecurrentStack) and rnn.steps_by_cells(emb)


def _attention(spec: DecoderSpec) -> Attention:
    # Luong scores the current h_t, Bahdanau the previous s_{t-1}: the query has size H either way.
    return Attention(spec.attention, spec.hidden_size, spec.key_size, spec.attention_mode,
                     spec.attention_window, output_size=spec.hidden_size)  # fmt: skip


class PlainDecoder(RecurrentDecoder[PlainState]):
    """Sutskever et al. 2014: the recurrence's top-layer outputs are the features."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        self.rnn = _stack(spec, spec.embed_dim)
        self.feature_size = spec.hidden_size

    def start(self, enc: EncoderOut, hidden: RecurrentState) -> PlainState:
        return PlainState(hidden)

    def forward(self, emb: Tensor, state: PlainState) -> tuple[DecoderOut, PlainState]:
        feats, hidden = self.rnn(emb, state.hidden)  # (B, T, H)
        return DecoderOut(feats), PlainState(hidden)


class ChoDecoder(RecurrentDecoder[ChoState]):
    """Cho et al. 2014: the encoder summary feeds every step and the readout."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        e, h, k = spec.embed_dim, spec.hidden_size, spec.key_size
        self.dirs = spec.encoder_dirs
        self.rnn = _stack(spec, e + k)
        self.readout = nn.Linear(h + e + k, e)
        self.feature_size = e

    def start(self, enc: EncoderOut, hidden: RecurrentState) -> ChoState:
        top = enc.final.h[-self.dirs :]  # (dirs, B, H_e)
        return ChoState(hidden, top.permute(1, 0, 2).reshape(top.size(1), -1))  # (B, dirs*H_e)

    def forward(self, emb: Tensor, state: ChoState) -> tuple[DecoderOut, ChoState]:
        ctx = state.context.unsqueeze(1).expand(-1, emb.size(1), -1)  # (B, T, K)
        h, hidden = self.rnn(torch.cat([emb, ctx], dim=-1), state.hidden)
        feats = torch.tanh(self.readout(torch.cat([h, emb, ctx], dim=-1)))  # (B, T, E)
        return DecoderOut(feats), state.replace(hidden=hidden)


class _Steps:
    """Per-step outputs of an attention decoder, stacked into a :class:`DecoderOut`."""

    def __init__(self, copy: bool) -> None:
        self.copy = copy
        self.feats: list[Tensor] = []
        self.weights: list[Tensor] = []
        self.contexts: list[Tensor] = []
        self.queries: list[Tensor] = []

    def add(self, feat: Tensor, weights: Tensor, ctx: Tensor, query: Tensor) -> None:
        self.feats.append(feat)
        self.weights.append(weights)
        if self.copy:  # only the pointer needs c_t and h_t afterwards
            self.contexts.append(ctx)
            self.queries.append(query)

    def out(self) -> DecoderOut:
        stack = lambda xs: torch.stack(xs, dim=1) if xs else None  # noqa: E731
        return DecoderOut(
            torch.stack(self.feats, dim=1), stack(self.weights), stack(self.contexts),
            stack(self.queries),
        )  # fmt: skip


class _AttentionDecoder(RecurrentDecoder[AttentionState]):
    """What Bahdanau and Luong share: the attention, its prepared keys and the step counter."""

    attention: Attention

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        self.copy = spec.copy

    def start(self, enc: EncoderOut, hidden: RecurrentState) -> AttentionState:
        b = enc.outputs.size(0)
        step = torch.zeros(b, dtype=torch.long, device=enc.outputs.device)
        return AttentionState(hidden, self.attention.prepare(enc.outputs, enc.mask), step)

    @staticmethod
    def first_step(emb: Tensor, state: AttentionState) -> int:
        """The decoder step of ``emb``'s first position (all rows decode in lockstep)."""
        return int(state.step[0]) if emb.size(0) else 0


class BahdanauDecoder(_AttentionDecoder):
    """Bahdanau et al. 2015: attend with s_{t-1}, feed c_t into the recurrence, read out."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__(spec)
        e, h, k = spec.embed_dim, spec.hidden_size, spec.key_size
        self.rnn = _stack(spec, e + k)
        self.attention = _attention(spec)
        self.readout = nn.Linear(h + e + k, e)
        self.feature_size = e

    def forward(self, emb: Tensor, state: AttentionState) -> tuple[DecoderOut, AttentionState]:
        if _by_cells(self.rnn, emb):
            return self._forward_cells(emb, state)
        keys, step0, hidden = state.keys, self.first_step(emb, state), state.hidden
        steps = _Steps(self.copy)
        for t in range(emb.size(1)):  # each step needs the last one's state
            x = emb[:, t : t + 1]  # (B, 1, E)
            ctx, w = self.attention(hidden.h[-1], keys, step0 + t)  # query s_{t-1}
            h_t, hidden = self.rnn(torch.cat([x, ctx.unsqueeze(1)], dim=-1), hidden)
            h_t = h_t.squeeze(1)  # (B, H)
            feat = torch.tanh(self.readout(torch.cat([h_t, x.squeeze(1), ctx], dim=-1)))
            steps.add(feat, w, ctx, h_t)
        return steps.out(), state.replace(hidden=hidden, step=state.step + emb.size(1))

    def _forward_cells(
        self, emb: Tensor, state: AttentionState
    ) -> tuple[DecoderOut, AttentionState]:
        """:meth:`forward`'s math with W_ih E y_{t-1} of all steps in one product before the
        loop; only the context part of the first layer's input is projected per step."""
        keys, step0 = state.keys, self.first_step(emb, state)
        gx = self.rnn.project_first(emb)  # T × (B, G)
        weights = self.rnn.step_weights(state.keys.keys.size(-1))
        hidden = self.rnn.layer_states(state.hidden)
        steps = _Steps(self.copy)
        for t, x in enumerate(emb.unbind(1)):  # unbound: one backward op for all steps
            ctx, w = self.attention(hidden[-1][0], keys, step0 + t)  # query s_{t-1}
            hidden = self.rnn.cell_step(gx[t], ctx, hidden, weights)
            h_t = hidden[-1][0]  # (B, H)
            feat = torch.tanh(self.readout(torch.cat([h_t, x, ctx], dim=-1)))
            steps.add(feat, w, ctx, h_t)
        new = state.replace(hidden=self.rnn.stacked(hidden), step=state.step + emb.size(1))
        return steps.out(), new


class LuongDecoder(_AttentionDecoder):
    """Luong et al. 2015: attend with h_t after the recurrence; h̃_t fed back with input feeding.

    Without input feeding nothing flows back into the recurrence, so the RNN runs over all T
    steps in one call and only attention loops.
    """

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__(spec)
        h, k = spec.hidden_size, spec.key_size
        self.input_feeding = spec.input_feeding
        self.rnn = _stack(spec, spec.embed_dim + (h if spec.input_feeding else 0))
        self.attention = _attention(spec)
        self.combine = AttentionalHidden(h, k, h)
        self.feature_size = h

    def start(self, enc: EncoderOut, hidden: RecurrentState) -> AttentionState:
        state = super().start(enc, hidden)
        if not self.input_feeding:
            return state
        return state.replace(
            input_feed=enc.outputs.new_zeros(enc.outputs.size(0), self.feature_size)
        )

    def forward(self, emb: Tensor, state: AttentionState) -> tuple[DecoderOut, AttentionState]:
        keys, step0 = state.keys, self.first_step(emb, state)
        hidden, feed = state.hidden, state.input_feed
        if feed is not None and _by_cells(self.rnn, emb):
            return self._forward_cells(emb, state, feed)
        if feed is None:
            outs, hidden = self.rnn(emb, hidden)  # (B, T, H)
        steps = _Steps(self.copy)
        for t in range(emb.size(1)):
            if feed is None:
                h_t = outs[:, t]
            else:
                x = torch.cat([emb[:, t : t + 1], feed.unsqueeze(1)], dim=-1)  # (B, 1, E+H)
                h_t, hidden = self.rnn(x, hidden)
                h_t = h_t.squeeze(1)
            ctx, w = self.attention(h_t, keys, step0 + t)  # query h_t
            feat = self.combine(h_t, ctx)  # h̃_t (B, H)
            feed = feat if feed is not None else None
            steps.add(feat, w, ctx, h_t)
        new = state.replace(hidden=hidden, input_feed=feed, step=state.step + emb.size(1))
        return steps.out(), new

    def _forward_cells(
        self, emb: Tensor, state: AttentionState, feed: Tensor
    ) -> tuple[DecoderOut, AttentionState]:
        """Input feeding with W_ih E y_{t-1} of all steps in one product before the loop; only
        the h̃_{t-1} part of the first layer's input is projected per step."""
        keys, step0 = state.keys, self.first_step(emb, state)
        gx = self.rnn.project_first(emb)  # T × (B, G)
        weights = self.rnn.step_weights(feed.size(-1))
        hidden = self.rnn.layer_states(state.hidden)
        steps = _Steps(self.copy)
        for t in range(emb.size(1)):
            hidden = self.rnn.cell_step(gx[t], feed, hidden, weights)
            h_t = hidden[-1][0]  # (B, H)
            ctx, w = self.attention(h_t, keys, step0 + t)  # query h_t
            feed = self.combine(h_t, ctx)  # h̃_t (B, H)
            steps.add(feed, w, ctx, h_t)
        new = state.replace(
            hidden=self.rnn.stacked(hidden), input_feed=feed, step=state.step + emb.size(1)
        )
        return steps.out(), new


ATTENTION_DECODERS: dict[str, type[_AttentionDecoder]] = {
    "previous": BahdanauDecoder,
    "current": LuongDecoder,
}


def decoder_problems(attention: str, input_feeding: bool, attention_mode: str) -> list[str]:
    """What is wrong (one message per ``--`` flag) with these options for an encoder–decoder.

    Input feeding and the local modes are Luong's: they need a score that queries the current
    state. ``attention`` is a registered score or ``none``.
    """
    query = None if attention == "none" else score_query(attention)
    luong = ", ".join(scores_querying("current"))
    problems = []
    if input_feeding and query != "current":
        problems.append(
            f"--input-feeding needs a Luong attention (a score that queries the decoder's "
            f"current state: {luong})"
        )
    if attention_mode != "global" and query != "current":
        problems.append(f"--attention-mode local-m/local-p are Luong's; use {luong}")
    return problems


def build_decoder(spec: DecoderSpec) -> RecurrentDecoder:
    """The decoder style ``spec`` asks for (see the module docstring)."""
    problems = decoder_problems(spec.attention, spec.input_feeding, spec.attention_mode)
    if spec.feed_context and spec.attention != "none":
        problems.append("--feed-context is the attention-free Cho decoder; attention feeds context")
    if problems:
        raise RnnkitError("; ".join(problems))
    if spec.attention == "none":
        return ChoDecoder(spec) if spec.feed_context else PlainDecoder(spec)
    return ATTENTION_DECODERS[score_query(spec.attention)](spec)
