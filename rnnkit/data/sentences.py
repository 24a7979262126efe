"""Sentences as padded batches: tokens with aligned tags and/or one label per sentence.

:class:`SentenceData` reads a split that ``rnnkit preprocess --task tagging|classification``
wrote (``{split}.in``, ``{split}.tags``, ``{split}.label``, memory-mapped) or holds encoded raw
lines in memory; :meth:`SentenceData.collate` pads the sentences of one batch.
Epochs of batches are walked by :class:`rnnkit.data.buckets.BatchIterator`, which keeps the
seed and position, so a stopped run resumes at the next batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.binarized import IndexedDataset
from rnnkit.errors import RnnkitError


@dataclass
class SentenceBatch:
    """Padded sentences: ``tokens`` and ``tags`` (B, T) padded with ``<pad>``, ``lengths`` and
    ``labels`` (B,) (``<pad>`` for an empty label line), and the sentences' ``indices``."""

    tokens: Tensor
    lengths: Tensor
    tags: Tensor | None
    labels: Tensor | None
    indices: list[int]

    def to(self, device: torch.device) -> SentenceBatch:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return SentenceBatch(move(self.tokens), move(self.lengths), move(self.tags),
                             move(self.labels), self.indices)  # fmt: skip


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> Tensor:
    """Sequences of ids → (B, T) int64, right-padded with ``pad`` (T at least 1)."""
    out = torch.full((len(rows), max([len(r) for r in rows] + [1])), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.int64))
    return out


class SentenceData:
    """Sentences of one split as id sequences (binarized or in memory), batched on demand."""

    def __init__(
        self,
        tokens: Sequence[Sequence[int]],
        pad: int,
        tags: Sequence[Sequence[int]] | None = None,
        labels: Sequence[Sequence[int]] | None = None,
        sizes: np.ndarray | None = None,
    ) -> None:
        self.tokens, self.tags, self.labels, self.pad = tokens, tags, labels, pad
        lengths = [len(t) for t in tokens] if sizes is None else sizes
        self.sizes = np.asarray(lengths, dtype=np.int64)  # (N,) tokens per sentence

    @classmethod
    def load(cls, prefix: Path, pad: int, tags: bool, labels: bool) -> SentenceData:
        """``prefix.in`` (and ``prefix.tags``, ``prefix.label``) memory-mapped."""
        streams = [IndexedDataset(f"{prefix}.{s}") if want else None
                   for s, want in (("in", True), ("tags", tags), ("label", labels))]  # fmt: skip
        for ds in streams[1:]:
            if ds is not None and len(ds) != len(streams[0]):
                raise RnnkitError(
                    f"{ds.prefix}: {len(ds)} sequences, but {prefix}.in has {len(streams[0])}"
                )
        return cls(streams[0], pad, streams[1], streams[2], streams[0].sizes)

    def collate(self, indices: list[int]) -> SentenceBatch:
        """The sentences at ``indices`` as one padded batch."""
        tags = labels = None
        if self.tags is not None:
            tags = pad_rows([self.tags[i] for i in indices], self.pad)
        if self.labels is not None:
            rows = [self.labels[i] for i in indices]
            labels = torch.tensor([int(r[0]) if len(r) else self.pad for r in rows])
        tokens = pad_rows([self.tokens[i] for i in indices], self.pad)
        return SentenceBatch(tokens, torch.as_tensor(self.sizes[indices]), tags, labels, indices)
