"""The language model's training data: a token stream cut into rows, walked in BPTT windows.

:class:`StreamIterator` walks ``bptt``-column :class:`Window` s over the B parallel rows of a
split (:class:`~rnnkit.data.streams.TokenRows`) and keeps the hidden state carried from one
window to the next, so its :meth:`~StreamIterator.state_dict` (position and carried state)
resumes a run mid-epoch exactly. With several workers each walks its own contiguous block of
the rows (:func:`row_block`) and the carried state is gathered from all of them when saved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from rnnkit.data.streams import TokenRows
from rnnkit.training import distributed


def batchify(stream: torch.Tensor, rows: int) -> torch.Tensor:
    """Cut a 1-D stream into ``rows`` contiguous rows, dropping the remainder: (N,) → (B, N//B)."""
    return TokenRows.cut(stream, rows).data  # type: ignore[return-value]


@dataclass
class Window:
    """One BPTT window: inputs and next-token targets, both (B, L); ``scale`` multiplies the lr."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scale: float = 1.0

    def to(self, device: torch.device) -> Window:
        return Window(self.inputs.to(device), self.targets.to(device), self.scale)


class StreamIterator:
    """Walks BPTT windows over (B, N) rows (a :class:`TokenRows`, or an int64 tensor); keeps
    the carried hidden state and its position.

    ``sharded``: the rows are this worker's block of the whole world's, so :meth:`state_dict`
    gathers the carried state of every worker's rows.
    """

    def __init__(
        self,
        rows: TokenRows | torch.Tensor,
        bptt: int,
        random_bptt: bool = False,
        generator: torch.Generator | None = None,
        position: int = 0,
        sharded: bool = False,
    ) -> None:
        self.rows = rows if isinstance(rows, TokenRows) else TokenRows(rows)
        self.bptt, self.random_bptt = bptt, random_bptt
        self.generator = generator
        self.position = position
        self.sharded = sharded
        self.carry: Any = None  # the model's hidden state after the last window

    def __len__(self) -> int:
        """Number of windows in a full pass at the nominal ``bptt``."""
        return math.ceil((self.rows.width - 1) / self.bptt)

    @property
    def batches_done(self) -> int:
        """Windows already walked this epoch (at the nominal ``bptt``), for progress bars."""
        return round(self.position / self.bptt)

    def _length(self) -> int:
        if not self.random_bptt:
            return self.bptt
        g = self.generator
        base = self.bptt if torch.rand(1, generator=g).item() < 0.95 else self.bptt / 2
        return max(5, int(torch.normal(base, 5.0, (1,), generator=g).item()))

    def __iter__(self) -> Iterator[Window]:
        last = self.rows.width - 1
        while self.position < last:
            length = min(self._length(), last - self.position)
            i = self.position
            self.position += length
            chunk = self.rows.columns(i, i + length + 1)  # (B, length + 1): inputs and targets
            yield Window(
                chunk[:, :-1], chunk[:, 1:], length / self.bptt if self.random_bptt else 1.0
            )

    def state_dict(self) -> dict[str, Any]:
        """Position and carried state as plain data (the state's tensor fields by name).

        Sharded, every worker must call it together: the carried state of all workers' rows is
        gathered along the batch dim (1: states are (layers, B, H)), so it covers all B rows.
        """
        carry = None
        if self.carry is not None:
            carry = {f.name: getattr(self.carry, f.name) for f in dataclasses.fields(self.carry)}
        if self.sharded:
            cpu = None if carry is None else {k: _cpu(v) for k, v in carry.items()}
            parts = distributed.all_gather_object(cpu)
            carry = None if cpu is None else {k: _cat_rows([p[k] for p in parts]) for k in cpu}
        return {"position": self.position, "carry": carry}

    def load_carry(self, carry: dict[str, Any], state_type: type, device: torch.device) -> None:
        """Restore the carried state saved by :meth:`state_dict`."""
        self.carry = state_type(
            **{k: v.to(device) if v is not None else None for k, v in carry.items()}
        )


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().cpu()


def _cat_rows(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if parts[0] is None else torch.cat(parts, dim=1)  # type: ignore[arg-type]


def row_block(n: int, shard: tuple[int, int]) -> slice:
    """Worker ``rank`` of ``world``'s contiguous block of ``n`` rows (sizes differ by at most 1)."""
    rank, world = shard
    return slice(rank * n // world, (rank + 1) * n // world)
