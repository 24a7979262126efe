"""The length rule and the batching of raw-line inference (scoring, tagging, classification).

A raw line can be any length, so inference on raw lines follows the rule ``generate`` applies to
translation: a line of more than ``max_positions`` tokens is truncated to its first ones, or
skipped with ``skip_invalid`` (its result is ``None``, an empty output line), with a warning
naming the line; every line still gets exactly one result. Lines are then grouped by length into
batches of at most ``batch_size`` lines and :data:`TOKENS_PER_BATCH` padded tokens, so memory is
bounded by tokens, never by one long line times the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from rnnkit.data.buckets import batch_by_size
from rnnkit.errors import RnnkitError, at
from rnnkit.reporting import get_reporter

T = TypeVar("T")
TOKENS_PER_BATCH = 8192  # padded tokens per batch (a longer line goes alone)


@dataclass(frozen=True)
class LineLimit:
    """How long a raw line may be, and where the lines come from (for the warnings).

    ``source_name`` and ``first_line`` name the first of the lines handed over together, so a
    warning can say ``file:line``.
    """

    max_positions: int = 1024
    skip_invalid: bool = False
    source_name: str = "<input>"
    first_line: int = 1

    def __post_init__(self) -> None:
        if self.max_positions < 1:
            raise RnnkitError(f"--max-positions must be at least 1, not {self.max_positions}")

    def fit(self, tokens: list[T], index: int) -> list[T] | None:
        """``tokens`` of the ``index``-th line (0-based) if not too many, else their first
        ``max_positions`` (or ``None`` with ``skip_invalid``), with a warning naming the line."""
        if len(tokens) <= self.max_positions:
            return tokens
        action = "skipped" if self.skip_invalid else f"truncated to the first {self.max_positions}"
        get_reporter().warning(
            f"{at(self.source_name, self.first_line + index)}: {len(tokens)} tokens exceed "
            f"--max-positions {self.max_positions}; {action}"
        )
        return None if self.skip_invalid else tokens[: self.max_positions]


def token_batches(sizes: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices into ``sizes`` grouped by length: at most ``batch_size`` lines and
    :data:`TOKENS_PER_BATCH` padded tokens a batch (a line longer than that goes alone)."""
    arr = np.asarray(sizes, dtype=np.int64)
    fits = np.flatnonzero(arr <= TOKENS_PER_BATCH)
    alone = np.flatnonzero(arr > TOKENS_PER_BATCH)
    batches = [] if not len(fits) else batch_by_size(arr[fits], batch_size, TOKENS_PER_BATCH)
    return [fits[b].tolist() for b in batches] + [[int(i)] for i in alone]
