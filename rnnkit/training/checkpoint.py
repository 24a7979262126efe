"""Self-describing checkpoints as plain data.

A checkpoint is a dict of plain Python values and tensors — format version, task, architecture,
model config, dictionaries (as ``dict.txt`` lines), tokenizer state, weights, optimizer and
schedule state, progress counters and RNG states — so it loads with
``torch.load(weights_only=True)`` (an untrusted file cannot run code) and rebuilds its model
without the data directory. Saving writes a temp file and renames it, so a crash or a full disk
mid-write never corrupts the previous checkpoint (a failed write is a one-line
:class:`~rnnkit.io.WriteError`).

Reading says in one line, naming the file, what is wrong with a file that is not a usable
checkpoint: not an rnnkit checkpoint, truncated, unsafe content refused (a pickle that would
run code), incomplete (an entry missing), or incompatible with its own config (a tensor of
another shape: :func:`load_weights`; anything else while rebuilding: :func:`rebuilding`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch

from rnnkit.errors import RnnkitError
from rnnkit.io import atomic_write

FORMAT = "rnnkit-checkpoint"
VERSION = 1
# What every checkpoint holds to rebuild its model, and what resuming a run also reads.
MODEL_KEYS = ("task", "arch", "model", "model_config", "dictionaries", "tokenizer", "model_state")
RESUME_KEYS = ("train_config", "optimizer", "schedule", "progress", "rng", "data_rng")
# Left out by --no-save-optimizer-state: a run resumed from such a file starts a fresh optimizer.
OPTIONAL_KEYS = frozenset({"optimizer"})
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE"}


class IncompatibleCheckpoint(RnnkitError):
    """A checkpoint whose entries do not fit its own config (the message names no file;
    :func:`rebuilding` adds it)."""


class _WholeWrites:
    """The file as ``torch.save`` sees it: every write completes or raises, and the first
    ``OSError`` is kept, because torch turns it into an unrelated ``RuntimeError``."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):  # a write that reaches a size limit is short first
                done += self.f.write(view[done:]) or 0
        except OSError as e:
            self.error = self.error or e
            raise
        return done

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` (plain data + tensors) to ``path`` atomically; a full disk or a size
    limit raises a :class:`~rnnkit.io.WriteError` naming ``path`` and leaves ``path`` as it was."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_write(path, "wb") as f:
        sink = _WholeWrites(f)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None  # atomic_write names the file


def load_checkpoint(path: str | os.PathLike, resume: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, tensors on the CPU.

    ``resume``: the training state must be there too (all but the optimizer's, which
    ``--no-save-optimizer-state`` leaves out). A missing, truncated, foreign, unsafe or
    incomplete file raises a one-line :class:`RnnkitError` naming it.
    """
    p = _checked_path(path)
    state = _read(p)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RnnkitError(f"{p}: not an rnnkit checkpoint")
    if state.get("version", 0) > VERSION:
        raise RnnkitError(f"{p}: checkpoint version {state['version']} is newer than this rnnkit")
    if resume and "averaged_from" in state:  # rnnkit average: weights only, no run to continue
        raise RnnkitError(
            f"{p}: an average of checkpoints holds no training state to resume; "
            "start from its weights with --finetune-from-model"
        )
    for key in MODEL_KEYS + (RESUME_KEYS if resume else ()):
        if key not in state and key not in OPTIONAL_KEYS:
            raise RnnkitError(f"{p}: incomplete rnnkit checkpoint: it has no {key!r} entry")
    for key in ("model_config", "dictionaries", "tokenizer", "model_state"):
        if not isinstance(state[key], Mapping):
            raise RnnkitError(f"{p}: damaged rnnkit checkpoint: its {key!r} is not a mapping")
    return state


def _checked_path(path: str | os.PathLike) -> Path:
    """``path`` if it is a readable file; else the one-line error every ``--path`` gives."""
    p = Path(path)
    if p.is_dir():
        raise RnnkitError(
            f"{p}: is a directory; give a checkpoint file such as {p / 'checkpoint_best.pt'}"
        )
    if not p.is_file():
        raise RnnkitError(f"{p}: no such checkpoint")
    if not os.access(p, os.R_OK):
        raise RnnkitError(f"{p}: permission denied")
    return p


def _read(p: Path) -> Any:
    """``torch.load(weights_only=True)`` of ``p``, its failures told apart in one line."""
    with open(p, "rb") as f:
        head = f.read(4)
    if not head:
        raise RnnkitError(f"{p}: not an rnnkit checkpoint (the file is empty)")
    if head != _ZIP_MAGIC:  # rnnkit never writes anything else
        if _pickle_calls_code(p):
            raise RnnkitError(f"{p}: unsafe content refused: a pickle that would run code")
        raise RnnkitError(f"{p}: not an rnnkit checkpoint")
    if not zipfile.is_zipfile(p):  # the zip's directory, written last, is missing
        raise RnnkitError(f"{p}: truncated checkpoint (the file ends early; copied mid-write?)")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle before refusing it
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise RnnkitError(
                f"{p}: unsafe content refused: it holds a {found.group(1)} object, and an "
                "rnnkit checkpoint holds only tensors and plain data"
            ) from None
        raise RnnkitError(f"{p}: not an rnnkit checkpoint (its data is not torch's)") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        why = "truncated or damaged" if isinstance(e, EOFError | OSError) else "damaged"
        raise RnnkitError(f"{p}: {why} checkpoint (torch cannot read its data)") from None


def _pickle_calls_code(p: Path) -> bool:
    """Whether the pickle at the start of ``p`` imports or calls anything (a plain-data pickle
    does not); anything that does not parse as a pickle is not."""
    try:
        with open(p, "rb") as f:
            for op, _, _ in pickletools.genops(f):
                if op.name in _CODE_OPCODES:
                    return True
    except Exception:  # noqa: BLE001 - random bytes fail in many ways; none of them is code
        return False
    return False


def upgrade_state_dict(model: torch.nn.Module, weights: Mapping[str, Any]) -> dict[str, Any]:
    """``weights`` with the names older checkpoints used renamed to ``model``'s: every submodule
    with an ``upgrade_state_dict_named(state_dict, prefix)`` method renames its own, in place."""
    weights = dict(weights)
    for name, module in model.named_modules():
        upgrade = getattr(module, "upgrade_state_dict_named", None)
        if callable(upgrade):
            upgrade(weights, f"{name}." if name else "")
    return weights


def load_weights(
    model: torch.nn.Module, weights: Mapping[str, Any], path: str | os.PathLike | None = None
) -> None:
    """Load a checkpoint's ``model_state`` into ``model`` (built from the checkpoint's config).

    A tensor missing, unexpected or of another shape raises :class:`IncompatibleCheckpoint`
    naming it and both shapes (and ``path``, when given), never torch's many-line error.
    """
    where = f"{os.fspath(path)}: " if path is not None else ""
    if not isinstance(weights, Mapping):
        raise IncompatibleCheckpoint(f"{where}damaged checkpoint: 'model_state' is not a mapping")
    weights = upgrade_state_dict(model, weights)
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    for names, say in ((missing, "lacks tensor {}"), (extra, "has tensor {}, not in its model")):
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise IncompatibleCheckpoint(
                f"{where}incompatible with its config: 'model_state' "
                + say.format(f"{names[0]!r}{more}")
            )
    for name, mine in expected.items():
        theirs = weights[name]
        if not isinstance(theirs, torch.Tensor):
            raise IncompatibleCheckpoint(
                f"{where}incompatible with its config: 'model_state' entry {name!r} is not a tensor"
            )
        if theirs.shape != mine.shape:
            raise IncompatibleCheckpoint(
                f"{where}incompatible with its config: tensor {name!r} has shape "
                f"{tuple(theirs.shape)}, its model config gives {tuple(mine.shape)}"
            )
    model.load_state_dict(weights)


@contextlib.contextmanager
def rebuilding(path: str | os.PathLike) -> Iterator[None]:
    """Rebuild a task and model from the checkpoint at ``path`` in the block: whatever its
    content makes fail becomes one line naming ``path``."""
    try:
        yield
    except RnnkitError as e:  # a misshapen tensor, an unknown task, model or config field…
        text = str(e)
        raise RnnkitError(text if text.startswith(f"{path}: ") else f"{path}: {text}") from None
    except KeyError as e:
        raise RnnkitError(f"{path}: incomplete rnnkit checkpoint: no {e.args[0]!r} entry") from None
    except (TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise RnnkitError(
            f"{path}: incompatible with its config ({type(e).__name__}: {first})"
        ) from None


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
