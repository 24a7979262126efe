"""Length-bucketed batches under a token budget, in one seeded global order, shardable by rank.

Sentences of similar length go together so little compute is spent on padding (fairseq's
``batch_by_size``): indices are shuffled with a seed, then stably sorted by length, and cut
greedily into batches of at most ``batch_size`` sentences and ``max_tokens`` tokens counted as
``sentences × longest`` (the padded size the model actually computes). The list of batches is
shuffled again with the same seed, so an epoch's order depends only on (seed, sizes). A data-
parallel rank takes ``batches[rank::world]`` after the list is cut to a multiple of ``world``,
so every rank runs the same number of updates.

Resume under any world size is exact: the saved position counts *global* batches done, and a
resumed epoch deals out only the batches from that position on (``rest[rank::world]``, ``rest``
cut to a multiple of the new ``world``), so no batch is replayed or skipped, whatever divides
what. The only batches an epoch leaves out are its last ``len(rest) % world`` (at most
``world - 1``), as any epoch of several workers leaves out its remainder; with the same world
size these are exactly the batches an uninterrupted run leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from rnnkit.errors import RnnkitError


def batch_by_size(
    sizes: np.ndarray, batch_size: int, max_tokens: int, seed: int | None = None
) -> list[np.ndarray]:
    """Batches of indices into ``sizes`` (N,) (each entry the padded length of an example).

    ``seed`` None keeps sorted order without shuffling (validation, decoding); ``batch_size`` or
    ``max_tokens`` of 0 means no limit of that kind (not both).
    """
    if batch_size <= 0 and max_tokens <= 0:
        raise RnnkitError("give --batch-size or --max-tokens (both are 0)")
    n = len(sizes)
    if seed is None:
        order = np.argsort(sizes, kind="stable")
    else:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        order = perm[np.argsort(sizes[perm], kind="stable")]
    if max_tokens > 0 and n and int(sizes.max()) > max_tokens:
        raise RnnkitError(
            f"an example of {int(sizes.max())} tokens does not fit --max-tokens {max_tokens}"
        )
    batches, start, longest = [], 0, 0
    for i in range(n):
        longest_if = max(longest, int(sizes[order[i]]))
        count = i - start + 1
        over = (batch_size > 0 and count > batch_size) or (
            max_tokens > 0 and count * longest_if > max_tokens
        )
        if over:
            batches.append(order[start:i])
            start, longest_if = i, int(sizes[order[i]])
        longest = longest_if
    if start < n:
        batches.append(order[start:n])
    if seed is not None:
        rng = np.random.default_rng(seed + 1)
        batches = [batches[j] for j in rng.permutation(len(batches))]
    return batches


def shard(batches: list, rank: int, world: int) -> list:
    """Rank ``rank``'s share of ``batches``: every ``world``-th one, equal counts on all ranks."""
    if not 0 <= rank < world:
        raise RnnkitError(f"rank {rank} is outside a world of {world}")
    usable = len(batches) // world * world
    return batches[rank:usable:world]


class BatchIterator:
    """One epoch over a worker's share of a batch list: ``collate(indices)`` makes each batch.

    ``batches`` is this worker's share of the epoch's global order from global batch ``start``
    on (0, or a resumed position). Its state is the epoch's ``seed`` and the position in the
    *global* order (``start`` + local batches done × ``world``), which :meth:`for_epoch` resumes
    exactly under any world size.
    """

    def __init__(
        self,
        batches: list[np.ndarray],
        collate: Callable[[list[int]], Any],
        seed: int | None,
        start: int = 0,
        world: int = 1,
    ) -> None:
        self.batches, self.collate, self.seed, self.world = batches, collate, seed, world
        self.start = start  # global batches done before this iterator's first
        self.position = 0  # local batches done

    def __len__(self) -> int:
        """The epoch's batches for this worker, counting those done before a resume as
        ``start // world``."""
        return self.start // self.world + len(self.batches)

    @property
    def batches_done(self) -> int:
        return self.start // self.world + self.position

    def __iter__(self) -> Iterator[Any]:
        while self.position < len(self.batches):
            self.position += 1
            yield self.collate(self.batches[self.position - 1].tolist())

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "position": self.start + self.position * self.world}

    @classmethod
    def for_epoch(
        cls,
        make_batches: Callable[[int], list[np.ndarray]],
        collate: Callable[[list[int]], Any],
        generator: Any,
        resume: Mapping[str, Any] | None,
        shard_of: tuple[int, int],
    ) -> BatchIterator:
        """A training epoch: ``make_batches(seed)`` is the global order, with the seed taken
        from ``resume`` or drawn from ``generator`` (a ``torch.Generator``, alike on every
        worker); worker ``shard_of = (rank, world)`` takes its share of the batches from the
        resumed global position on, so a resume continues at the next batch of the global
        order whatever the old and new world sizes.
        """
        import torch

        resume = resume or {}
        seed = resume.get("seed")
        if seed is None:
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        rank, world = shard_of
        start = int(resume.get("position", 0))
        return cls(shard(make_batches(seed)[start:], rank, world), collate, seed, start, world)
