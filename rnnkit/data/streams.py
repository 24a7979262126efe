"""The B parallel rows of a language-model token stream, read one window of columns at a time.

A language model trains on one long stream of token ids cut into ``B`` contiguous rows (the
remainder dropped): row ``r`` is tokens ``r*N`` to ``(r+1)*N - 1`` for ``N = len // B``.
:class:`TokenRows` is that (B, N) matrix, or a contiguous block of its rows (one DDP worker's),
without building it: over a dataset's memory map (:meth:`rnnkit.data.binarized.IndexedDataset.
stream`) it is a strided view of the ``.bin`` file, and :meth:`TokenRows.columns` reads one
window's columns of its rows and converts them to int64. Resident memory is then one window,
however large the corpus, and workers on one machine share the file's pages in the page cache.
An int64 tensor works too (small data and tests).
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.errors import RnnkitError


class TokenRows:
    """A (rows, width) matrix of token ids: a memory-mapped numpy view or an int64 tensor."""

    def __init__(self, data: np.ndarray | torch.Tensor) -> None:
        if data.ndim != 2:
            raise ValueError(f"token rows are 2-D (rows, width), not {tuple(data.shape)}")
        self.data = data

    @classmethod
    def cut(cls, stream: np.ndarray | torch.Tensor, rows: int) -> TokenRows:
        """Cut a 1-D stream (N,) into ``rows`` contiguous rows (B, N // B), dropping the
        remainder; a view, nothing is read."""
        n = len(stream) // rows if rows > 0 else 0
        if n < 2:
            raise RnnkitError(f"{len(stream)} tokens are too few for {rows} parallel streams")
        return cls(stream[: n * rows].reshape(rows, n))

    @property
    def num_rows(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        """Tokens per row."""
        return int(self.data.shape[1])

    def block(self, rows: slice) -> TokenRows:
        """The rows ``rows`` (a contiguous block, e.g. one worker's), still a view."""
        return TokenRows(self.data[rows])

    def columns(self, start: int, stop: int) -> torch.Tensor:
        """Columns ``start`` to ``stop - 1`` of every row as int64: (rows, stop - start).

        From a memory map this reads just those tokens (a fresh tensor); from a tensor it is
        a view.
        """
        part = self.data[:, start:stop]
        if isinstance(part, torch.Tensor):
            return part
        return torch.from_numpy(np.array(part, dtype=np.int64))
