"""Self-describing checkpoints as plain data.

A checkpoint is a dict of plain Python values and tensors — format version, task, architecture,
model config, dictionaries (as ``dict.txt`` lines), tokenizer state, weights, optimizer and
schedule state, progress counters and RNG states — so it loads with
``torch.load(weights_only=True)`` (an untrusted file cannot run code) and rebuilds its model
without the data directory. Saving writes a temp file and renames it, so a crash mid-write
never corrupts the previous checkpoint.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from rnnkit.errors import RnnkitError
from rnnkit.io import atomic_write

FORMAT = "rnnkit-checkpoint"
VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` (plain data + tensors) to ``path`` atomically."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, tensors on the CPU.

    A missing, truncated or foreign file raises a one-line :class:`RnnkitError`.
    """
    p = Path(path)
    if not p.is_file():
        raise RnnkitError(f"{p}: no such checkpoint")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        ValueError,
    ) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RnnkitError(f"{p}: not a readable rnnkit checkpoint ({first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RnnkitError(f"{p}: not an rnnkit checkpoint")
    if state.get("version", 0) > VERSION:
        raise RnnkitError(f"{p}: checkpoint version {state['version']} is newer than this rnnkit")
    return state


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and, when present, CUDA)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
