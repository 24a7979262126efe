"""A training run's random streams as values it carries, not as process-wide state.

Dropout draws from torch's global generators (a module cannot be given a generator of its own),
so a run keeps its dropout stream as a state (``Run.rng``, in the form of
:func:`~rnnkit.training.checkpoint.rng_state`) and :func:`lent_process_state` puts it into the
global generators only while ``fit`` trains, giving the caller's state back afterwards.
Building a run draws the initial weights from its seed in forked generators, so nothing a
library call does leaves torch's generators (or the reporter in use) changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from rnnkit.reporting import using_reporter
from rnnkit.training import checkpoint as ckpt

if TYPE_CHECKING:
    from rnnkit.training.run import Run


def cuda_devices() -> list[int]:
    """The CUDA devices whose generators a fork saves and restores (none without CUDA)."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def seeded_rng_state(seed: int) -> dict[str, Any]:
    """What :func:`~rnnkit.training.checkpoint.rng_state` would return right after
    ``torch.manual_seed(seed)``, leaving torch's generators as they are."""
    with torch.random.fork_rng(devices=cuda_devices()):
        torch.manual_seed(seed)
        return ckpt.rng_state()


@contextlib.contextmanager
def lent_process_state(run: Run) -> Iterator[Run]:
    """For the ``with`` block (``fit``), torch's global generators continue ``run.rng`` and
    ``run.reporter`` is the reporter in use. Afterwards both are the caller's again, and
    ``run.rng`` is where the stream got to (``None`` inside: the stream lives in torch)."""
    with torch.random.fork_rng(devices=cuda_devices()), using_reporter(run.reporter):
        assert run.rng is not None, "the run's generators are lent out already"
        ckpt.set_rng_state(run.rng)
        run.rng = None
        try:
            yield run
        finally:
            run.rng = ckpt.rng_state()
