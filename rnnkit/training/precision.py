"""Speed options of the training loop: mixed precision (``--amp``) and ``--compile``.

``bf16`` runs the forward pass and loss under ``torch.autocast`` (on CUDA and on CPU). On a CPU
where oneDNN has no bf16 (no AVX-512: its LSTM has no bf16 kernel there) the recurrent layers run
in fp32 inside autocast (:func:`~rnnkit.modules.recurrent.fp32_recurrence` says why) and the rest
in emulated bf16: it works, slower than fp32, as one warning says. ``fp16`` adds a gradient
scaler, whose state the checkpoint carries, and needs CUDA (on CPU it is skipped with a warning:
oneDNN has no fp16 LSTM). ``--compile`` wraps the training model in ``torch.compile`` on CUDA;
on CPU it is skipped with a warning, since the fused RNN kernels leave it little to gain for a
compile that takes tens of seconds.

:func:`keep_freed_memory` asks glibc's malloc (once per training process) to serve every block
from its heap and keep up to 512 MiB of freed memory: the (N, V) logits and gradients of each
update are then reused instead of being mapped fresh and zero-filled by the kernel, which on two
cores costs about a tenth of a translation update in page faults (issue 16.2).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys
from typing import Any

import torch

from rnnkit.modules.recurrent import cpu_has_bf16
from rnnkit.reporting import get_reporter
from rnnkit.training import distributed

__all__ = ["Precision", "cpu_has_bf16", "keep_freed_memory", "maybe_compile"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _warn(message: str) -> None:
    if distributed.rank() == 0:
        get_reporter().warning(message)


class Precision:
    """Autocast for the forward pass; with fp16, loss scaling around backward and step."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype = _DTYPES.get(amp)
        if amp == "fp16" and device.type != "cuda":
            _warn("--amp fp16 needs CUDA; running in fp32 (--amp bf16 works on CPU)")
            self.dtype = None
        if amp == "bf16" and device.type == "cpu" and not cpu_has_bf16():
            _warn("--amp bf16: this CPU has no native bf16 (AVX-512-BF16 or AMX); the recurrent "
                  "layers run in fp32 and the rest in emulated bf16, slower than fp32")  # fmt: skip
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients back to their true scale (before normalizing and clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step (skipped by the scaler when fp16 gradients overflowed)."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def maybe_compile(model: torch.nn.Module, enabled: bool, device: torch.device) -> torch.nn.Module:
    """``torch.compile(model)`` on CUDA when ``enabled``; the model itself otherwise."""
    if not enabled:
        return model
    if device.type != "cuda":
        _warn("--compile is skipped on CPU (the fused RNN kernels leave it little to gain)")
        return model
    return torch.compile(model)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
KEPT_FREE_BYTES = 512 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's malloc for a training loop, once per process: no ``mmap``-ed blocks (a large
    tensor freed and allocated again every update would fault in fresh zeroed pages each time)
    and up to :data:`KEPT_FREE_BYTES` of free heap kept instead of returned to the system.
    Peak RSS can stay that much above the live tensors. Returns whether it applied (Linux with
    glibc only; elsewhere nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES))
