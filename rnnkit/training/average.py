"""Checkpoint averaging (``rnnkit average``): the mean of several checkpoints' weights.

fairseq's ``scripts/average_checkpoints.py`` semantics: every floating-point tensor of
``model_state`` is summed in float64, one checkpoint at a time (so memory holds one checkpoint
and the sums, never all of them), divided by their number and written back in its own dtype.
Tensors that are not floating point (integer counters, boolean masks) are not averaged: the
last checkpoint's value is kept. The inputs must be the same model: the same task, architecture,
model config (options marked ``resumable``, such as dropout, may differ: they do not shape a
weight), tokenizer, dictionaries and tensor names and shapes; the first difference is refused in
one line naming both files. :func:`last_checkpoints` picks a save dir's newest epoch
(``checkpoint{epoch}.pt``) or interval (``checkpoint_{epoch}_{updates}.pt``) checkpoints.

The result is a normal checkpoint for inference and fine-tuning (``--finetune-from-model``):
the metadata (task, arch, model config, dictionaries, tokenizer, train config) is the last
input's, and ``averaged_from`` lists the inputs. It carries no optimizer, schedule, progress or
RNG state — an average is no point a run passed through — so ``--restore-file`` refuses it as
a checkpoint to resume from.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rnnkit.errors import RnnkitError
from rnnkit.training.checkpoint import RESUME_KEYS, load_checkpoint

# Entries of a training checkpoint that belong to the run, not the model: an average drops them.
RUN_KEYS = (
    *(k for k in RESUME_KEYS if k != "train_config"),
    "rng_ranks",
    "amp_scaler",
    "started_from",
)
_EPOCH = re.compile(r"checkpoint(\d+)\.pt")
_UPDATES = re.compile(r"checkpoint_(\d+)_(\d+)\.pt")


def last_checkpoints(
    save_dir: str | os.PathLike, *, epochs: int | None = None, updates: int | None = None
) -> list[Path]:
    """The newest ``epochs`` ``checkpoint{epoch}.pt`` (by epoch number) or ``updates``
    ``checkpoint_{epoch}_{updates}.pt`` (by update count) in ``save_dir``, oldest first.

    Exactly one of ``epochs``/``updates`` is given; fewer matching files than asked for is a
    one-line error saying how many were found.
    """
    if (epochs is None) == (updates is None):
        raise RnnkitError("give one of --num-epoch-checkpoints and --num-update-checkpoints")
    d = Path(save_dir)
    if not d.is_dir():
        raise RnnkitError(f"{d}: no such directory")
    wanted, pattern, form = (
        (epochs, _EPOCH, "checkpoint{epoch}.pt")
        if epochs is not None
        else (updates, _UPDATES, "checkpoint_{epoch}_{updates}.pt")
    )
    assert wanted is not None
    if wanted < 1:
        raise RnnkitError(f"the number of checkpoints to average must be at least 1, not {wanted}")
    found = []
    for path in d.iterdir():
        m = pattern.fullmatch(path.name)
        if m and path.is_file():
            found.append((int(m.groups()[-1]), path))  # the epoch, or the update count
    if len(found) < wanted:
        raise RnnkitError(
            f"{d}: {len(found)} checkpoint(s) named {form} found, fewer than the {wanted} asked for"
        )
    return [path for _, path in sorted(found)[-wanted:]]


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """The checkpoint whose ``model_state`` is the mean of ``paths``' (see the module's doc).

    Reads one checkpoint at a time (``weights_only``); returns plain data for
    :func:`~rnnkit.training.checkpoint.save_checkpoint`.
    """
    if not paths:
        raise RnnkitError("no checkpoints to average")
    sums: dict[str, torch.Tensor] = {}
    first: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for i, path in enumerate(paths):
        state = load_checkpoint(path)
        if "quantization" in state:
            raise RnnkitError(
                f"{path}: an int8-quantized checkpoint cannot be averaged; average the "
                "float checkpoints, then quantize the result"
            )
        if i == 0:
            first = _signature(state)
        else:
            _check_same(first, _signature(state), paths[0], path)
        _accumulate(sums, state["model_state"])
    weights = {}
    for name, tensor in state["model_state"].items():  # the last input's order and dtypes
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            weights[name] = (sums[name] / len(paths)).to(tensor.dtype)
        else:
            weights[name] = tensor
    out = {k: v for k, v in state.items() if k not in RUN_KEYS and k not in ("format", "version")}
    out["model_state"] = weights
    out["averaged_from"] = [os.fspath(p) for p in paths]
    return out


def _accumulate(sums: dict[str, torch.Tensor], weights: Mapping[str, Any]) -> None:
    """Add ``weights``' floating-point tensors to ``sums`` in float64 (in place)."""
    for name, tensor in weights.items():
        if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
            continue
        value = tensor.detach().to(torch.float64)
        if name in sums:
            sums[name] += value
        else:
            sums[name] = value.clone()


def _signature(state: Mapping[str, Any]) -> dict[str, Any]:
    """What two checkpoints must share to be averaged, each entry a comparable value."""
    return {
        "task": state["task"],
        "arch": state.get("arch"),
        "model": state["model"],
        "model_config": _shaping_config(state["model"], state["model_config"]),
        "tokenizer": dict(state["tokenizer"]),
        "dictionaries": dict(state["dictionaries"]),
        "model_state": {
            k: (tuple(v.shape), v.is_floating_point()) if isinstance(v, torch.Tensor) else None
            for k, v in state["model_state"].items()
        },
    }


def _shaping_config(model: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` less the fields marked ``resumable`` by its model (dropout and the like)."""
    import rnnkit.tasks  # noqa: F401 - the built-in tasks register the built-in models
    from rnnkit.models import MODEL_REGISTRY

    try:
        cls = MODEL_REGISTRY.get(model)
    except RnnkitError:  # a plugin's model not loaded here: every field must agree
        return dict(config)
    fields = dataclasses.fields(cls.config_class)
    free = {f.name for f in fields if f.metadata.get("resumable", False)}
    return {k: v for k, v in config.items() if k not in free}


def _check_same(
    a: Mapping[str, Any], b: Mapping[str, Any], path_a: str | os.PathLike, path_b: str | os.PathLike
) -> None:
    """Refuse, in one line naming both files, the first entry where ``b`` differs from ``a``."""
    both = f"{os.fspath(path_a)} and {os.fspath(path_b)}"
    for key in ("task", "arch", "model"):
        if a[key] != b[key]:
            raise RnnkitError(f"cannot average {both}: {key} {a[key]!r} vs {b[key]!r}")
    cfg_a, cfg_b = a["model_config"], b["model_config"]
    for name in sorted(set(cfg_a) | set(cfg_b)):
        if cfg_a.get(name) != cfg_b.get(name):
            raise RnnkitError(
                f"cannot average {both}: model option {name} is "
                f"{cfg_a.get(name)!r} vs {cfg_b.get(name)!r}"
            )
    if a["tokenizer"] != b["tokenizer"]:
        raise RnnkitError(f"cannot average {both}: their tokenizers differ")
    for name in sorted(set(a["dictionaries"]) | set(b["dictionaries"])):
        if a["dictionaries"].get(name) != b["dictionaries"].get(name):
            raise RnnkitError(f"cannot average {both}: their {name!r} dictionaries differ")
    sig_a, sig_b = a["model_state"], b["model_state"]
    for name in list(sig_a) + [k for k in sig_b if k not in sig_a]:
        if sig_a.get(name) != sig_b.get(name):
            raise RnnkitError(
                f"cannot average {both}: tensor {name!r} is "
                f"{_describe(sig_a.get(name), name in sig_a)} vs "
                f"{_describe(sig_b.get(name), name in sig_b)}"
            )


def _describe(sig: tuple[tuple[int, ...], bool] | None, present: bool) -> str:
    """A tensor's shape (or absence) as an error message shows it."""
    if not present:
        return "missing"
    if sig is None:
        return "not a tensor"
    return f"of shape {sig[0]}" + ("" if sig[1] else " (not floating point)")
