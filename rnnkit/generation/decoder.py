"""The incremental decoder contract that search (:mod:`rnnkit.generation.search`) decodes through.

A model that generates from a source (seq2seq with attention, later others) exposes two methods:
``encode`` runs the encoder once and returns the initial decoding state, ``step`` advances every
hypothesis by one target token. All per-hypothesis memory — encoder outputs, source mask, the
recurrent hidden state, the previous attention context, input feeding — lives in one explicit
state object whose ``reorder(order)`` selects batch rows: search duplicates rows to make beams,
follows the beam each new hypothesis extends, and drops sentences that are finished. Search knows
nothing else about the model (no ``isinstance``). A model's state is a typed dataclass deriving
:class:`BatchState`, whose ``reorder`` selects the rows of every field; :class:`DecodeState` is an
untyped, name-keyed state for small decoders (tests, sketches).

Conventions: the first ``step`` receives ``eos`` as the previous token for every row (fairseq's
start symbol; ``Dictionary.eos_index``, 2), sources are right-padded with ``pad`` and
``src_lengths`` counts the real tokens, and ``step`` returns log-probabilities (log-softmax
output), not logits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from torch import Tensor

StateT = TypeVar("StateT", bound="Reorderable")


class Reorderable(Protocol):
    """Anything holding per-row decoding memory that search can select rows of."""

    def reorder(self: StateT, order: Tensor) -> StateT:
        """The state of rows ``order`` (B',) long: select, reorder or repeat batch rows.

        ``B'`` may be larger than the current batch (one sentence → ``beam`` rows) or smaller
        (finished sentences leave). The result must not share mutable storage the caller relies
        on; ``index_select`` along the batch dim does exactly this.
        """
        ...


class IncrementalDecoder(Protocol[StateT]):
    """What beam search and sampling need from a model (see the module docstring).

    Batch dims below: ``B`` sentences at ``encode``; at ``step`` ``B`` is whatever rows the state
    holds now (active sentences × beam), ``S`` the padded source length of the encoded batch and
    ``V`` the target vocabulary size. Both methods run under ``torch.inference_mode``; putting the
    model in ``eval()`` mode is the caller's job.
    """

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> StateT:
        """Initial state for ``src_tokens`` (B, S) long, right-padded, and ``src_lengths`` (B,).

        The state holds the encoder outputs and source mask, so ``reorder`` carries them along.
        """
        ...

    def step(self, prev_tokens: Tensor, state: StateT) -> tuple[Tensor, StateT, Tensor | None]:
        """One target step for every row of ``state``.

        ``prev_tokens`` (B,) long is each row's previous token (``eos`` at the first step).
        Returns ``log_probs`` (B, V) float — log P(next token | prefix, source), a tensor search
        may change in place, so not one the model keeps —, the new state,
        and the attention weights (B, S) over source positions (padding columns 0), or None for a
        model without attention (then hypotheses carry no alignment).
        """
        ...


Value = Tensor | Reorderable | None

BatchT = TypeVar("BatchT", bound="BatchState")


@dataclass(frozen=True)
class BatchState:
    """Base of typed decoding states: frozen dataclasses whose fields all follow the batch rows.

    A field is a tensor with the batch on dim 0 (e.g. ``input_feed`` (B, H)), anything with its
    own ``reorder`` (a :class:`~rnnkit.modules.recurrent.RecurrentState`, batch on dim 1, or a
    nested state), or ``None``. Subclasses only declare fields; :meth:`reorder` and
    :meth:`replace` work for all of them.
    """

    def replace(self: BatchT, **updates: object) -> BatchT:
        """This state with ``updates`` set (other fields shared, not copied)."""
        return dataclasses.replace(self, **updates)

    def reorder(self: BatchT, order: Tensor) -> BatchT:
        """Rows ``order`` (B',) of every field: ``index_select`` on dim 0, or its own reorder."""
        values = {f.name: _reorder(getattr(self, f.name), order) for f in dataclasses.fields(self)}
        return type(self)(**values)


@dataclass(frozen=True)
class DecodeState:
    """A generic decoding state: named batch-first tensors and nested states.

    Every tensor in ``values`` has the batch on dim 0 (e.g. ``encoder_out`` (B, S, H),
    ``src_mask`` (B, S), ``input_feed`` (B, H)); any other value is reordered through its own
    ``reorder`` (e.g. a :class:`~rnnkit.modules.recurrent.RecurrentState`, batch on dim 1);
    ``None`` stays ``None``. Models read ``state["name"]`` and build the next state with
    :meth:`replace`.
    """

    values: Mapping[str, Value] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def replace(self, **updates: Value) -> DecodeState:
        """A state with ``updates`` set (other values shared, not copied)."""
        return DecodeState({**self.values, **updates})

    def reorder(self, order: Tensor) -> DecodeState:
        """Rows ``order`` (B',) of every value: ``index_select`` on dim 0, or its own reorder."""
        return DecodeState({name: _reorder(value, order) for name, value in self.values.items()})


def _reorder(value: Value, order: Tensor) -> Value:
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value.index_select(0, order)
    return value.reorder(order)
