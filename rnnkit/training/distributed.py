"""Data parallelism across the processes torchrun starts: joining, collectives, failures.

torchrun (``rnnkit train --nproc-per-node N`` starts it for one machine) gives every worker
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` reads them and joins the process group
(nccl on GPUs, gloo on CPU) with a bounded collective timeout, so a dead or hung worker makes the
others fail rather than wait forever. Without torchrun the world is one process and every helper
here is a no-op, so the training loop has a single code path.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter


class WorkerLost(RnnkitError):
    """A collective failed: another worker died, hung past the timeout, or raised."""

    exit_code = 1


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def setup(device: torch.device, timeout_s: float) -> torch.device:
    """Join torchrun's process group if there is one; returns this worker's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or _active():
        return device
    if not dist.is_available():
        raise RnnkitError("WORLD_SIZE > 1, but this torch build has no torch.distributed")
    _check_restartable()
    if device.type == "cuda":  # one GPU per worker: cuda:LOCAL_RANK
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=device if device.type == "cuda" else None,
    )
    return device


def _check_restartable() -> None:
    """Warn (rank 0) when torchrun's restarts would fail: workers that share the c10d
    rendezvous' store find the previous attempt's addresses in it after a restart and cannot
    connect (pytorch/pytorch#135712); ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` avoids that."""
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if restarts > 0 and shared and os.environ.get("RANK", "0") == "0":
        get_reporter().warning(
            f"torchrun --max-restarts {restarts}: restarted workers cannot connect while they "
            "share torchrun's rendezvous store; set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for "
            "torchrun on every machine (pytorch/pytorch#135712)"
        )


def teardown() -> None:
    """Leave the process group once every worker is done (after a successful run).

    Drop the training model first: DDP sits in a reference cycle that holds the group, and a
    group still alive when the interpreter exits can abort the process (SIGABRT).
    """
    if _active():
        gc.collect()
        dist.barrier()  # no worker tears down while another still talks to it
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` under DistributedDataParallel when there are several workers."""
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def no_sync(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Skip DDP's gradient all-reduce for this micro-batch (the last one of an update syncs)."""
    sync_off = getattr(model, "no_sync", None)
    return sync_off() if sync_off is not None else contextlib.nullcontext()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over all workers (float64; identity in one process)."""
    if world_size() == 1:
        return [float(v) for v in values]
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_object(obj: Any) -> list[Any]:
    """Every worker's ``obj`` (picklable; tensors on the CPU), in rank order."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every worker."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _collective_failure(e: BaseException) -> bool:
    if isinstance(e, dist.DistError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("gloo", "NCCL", "Connection reset", "Connection closed", "Timed out")
    )


def as_worker_lost(e: BaseException, after: str) -> WorkerLost | None:
    """A failed collective as a one-line :class:`WorkerLost` ending with ``after``; else None."""
    if world_size() == 1 or not _collective_failure(e):
        return None
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    first = re.sub(r"^\[[^\]]*/[^\]]*\]\s*", "", first).split(". ")[0]  # no "[.../pair.cc:537]"
    return WorkerLost(
        f"rank {rank()} of {world_size()}: lost the other workers (one died, raised, or hung past "
        f"--ddp-timeout): {first[:200]}; {after}"
    )
