"""The Python API over trained models: ``rnnkit.load(path)``.

:func:`load` reads a checkpoint (safely: ``weights_only``), rebuilds its task and model, and
returns an instance of the task's ``inference`` class (:mod:`rnnkit.tasks.inference`): a
:class:`~rnnkit.tasks.inference.lm.LanguageModel` (``sample``, ``score``, ``perplexity``), a
:class:`~rnnkit.tasks.inference.translation.Translator` (``translate``), a
:class:`~rnnkit.tasks.inference.tagging.Tagger` (``tag``, ``classify`` with a label head) or a
:class:`~rnnkit.tasks.inference.tagging.Classifier` (``classify``), each a :class:`Pretrained`;
a method of another task raises a one-line :class:`~rnnkit.errors.RnnkitError` naming the task.
The command line calls the same objects, so there is one implementation of each. A list of
checkpoints loads an ensemble: the same class over a model that averages the members'
probabilities (:mod:`rnnkit.generation.ensemble`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit.tasks import task_from_checkpoint
from rnnkit.tasks.inference.base import Pretrained, TaskMismatch
from rnnkit.tasks.inference.lm import LanguageModel
from rnnkit.tasks.inference.tagging import Classifier, Tagger
from rnnkit.tasks.inference.translation import Translator
from rnnkit.training.checkpoint import load_checkpoint, rebuilding
from rnnkit.training.loop import pick_device

__all__ = [
    "Classifier",
    "LanguageModel",
    "Pretrained",
    "TaskMismatch",
    "Tagger",
    "Translator",
    "load",
]

QUANTIZE = ("none", "int8")


def load(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    device: str = "auto",
    quantize: str = "none",
) -> Pretrained:
    """Load a checkpoint written by ``rnnkit train`` for inference on ``device``: the
    checkpoint's task's inference object (its ``inference`` class; :class:`Pretrained` for a
    task without one).

    A list of several checkpoints gives an ensemble: the same inference class, whose ``model``
    averages the models' probabilities (:mod:`rnnkit.generation.ensemble`); ``paths`` and
    ``models`` name its members. They must be of one task and share their dictionaries.
    ``quantize="int8"`` (or a checkpoint written by ``rnnkit quantize``) runs dynamic int8
    linear and recurrent layers (CPU).

    A file that is not a usable checkpoint (a folder, foreign, truncated, unsafe, incomplete,
    or with weights that do not fit its config) raises a one-line error naming it.
    """
    if quantize not in QUANTIZE:
        raise RnnkitError(f"quantize must be one of {', '.join(QUANTIZE)} (got {quantize!r})")
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise RnnkitError("load() needs a checkpoint path (or a list of them)")
    loaded = [_load_one(p, quantize) for p in paths]
    task, model, state = loaded[0]
    inference = type(task).inference or Pretrained
    if len(loaded) > 1:
        check_members(paths, [(t, s) for t, _, s in loaded])
        model = _ensemble(inference, [m for _, m, _ in loaded], paths[0])
    int8 = quantize == "int8" or any(s.get("quantization") == "int8" for _, _, s in loaded)
    result = inference(task, model, state, _device(device, int8), paths[0])
    result.paths = [os.fspath(p) for p in paths]
    result.models = [m for _, m, _ in loaded]
    return result


def _load_one(path: str | os.PathLike, quantize: str) -> tuple[Any, torch.nn.Module, dict]:
    """The task, model and checkpoint state of one file (int8 when asked or stored so)."""
    state = load_checkpoint(path)
    int8 = quantize == "int8" or state.get("quantization") == "int8"
    if int8:
        expand_checkpoint, quantize_model = _quantization(path)
        with rebuilding(path):
            state = expand_checkpoint(state)
    with rebuilding(path):
        task = task_from_checkpoint(state)
        model = task.model_from_checkpoint(state)
        if int8:
            model = quantize_model(model)
    return task, model, state


def _device(device: str, int8: bool) -> torch.device:
    """Where to run: ``device`` ("auto": the CPU for an int8 model, which runs only there)."""
    chosen = pick_device("cpu" if int8 and device == "auto" else device)
    if int8 and chosen.type != "cpu":
        raise RnnkitError(f"int8 models run on the CPU, not on {device} (use --device cpu)")
    return chosen


def _quantization(path: str | os.PathLike) -> tuple[Any, Any]:
    """rnnkit.quantization's two functions, imported only on the int8 path."""
    try:
        from rnnkit.quantization import expand_checkpoint, quantize_model
    except ImportError as e:
        raise RnnkitError(f"{path}: int8 models need rnnkit.quantization ({e})") from None
    return expand_checkpoint, quantize_model


def check_members(paths: Sequence[str | os.PathLike], members: Sequence[tuple[Any, dict]]) -> None:
    """Refuse an ensemble whose checkpoints differ in task or dictionaries: one line naming the
    first file that differs from the first one (and which dictionary)."""
    first_task, first_state = members[0]
    ours = first_task.checkpoint_data()
    for p, (task, state) in zip(paths[1:], members[1:], strict=True):
        if state["task"] != first_state["task"]:
            raise RnnkitError(
                f"{p}: a {state['task']!r} checkpoint; the ensemble's first model "
                f"({paths[0]}) is {first_state['task']!r}: an ensemble needs one task"
            )
        theirs = task.checkpoint_data()
        names = [*ours["dictionaries"], *(theirs["dictionaries"].keys() - ours["dictionaries"])]
        for name in names:
            if theirs["dictionaries"].get(name) != ours["dictionaries"].get(name):
                raise RnnkitError(
                    f"{p}: its {name!r} dictionary differs from that of {paths[0]}: the models "
                    "of an ensemble must share their dictionaries"
                )
        if theirs.get("tokenizer") != ours.get("tokenizer"):
            get_reporter().warning(
                f"{p}: its tokenizer differs from that of {paths[0]}; the first one's is used"
            )


def _ensemble(inference: type, models: list[torch.nn.Module], first: Any) -> torch.nn.Module:
    """The ensemble wrapper of the inference class (one line if the task has none)."""
    wrapper = inference.ensemble_class
    if wrapper is None:
        raise RnnkitError(f"{first}: {inference.__name__} models cannot be ensembled")
    return wrapper(models)
