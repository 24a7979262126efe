"""The Python API over trained models: ``rnnkit.load(path)``.

:func:`load` reads a checkpoint (safely: ``weights_only``), rebuilds its task and model, and
returns an instance of the task's ``inference`` class (:mod:`rnnkit.tasks.inference`): a
:class:`~rnnkit.tasks.inference.lm.LanguageModel` (``sample``, ``score``, ``perplexity``), a
:class:`~rnnkit.tasks.inference.translation.Translator` (``translate``), a
:class:`~rnnkit.tasks.inference.tagging.Tagger` (``tag``, ``classify`` with a label head) or a
:class:`~rnnkit.tasks.inference.tagging.Classifier` (``classify``), each a :class:`Pretrained`;
a method of another task raises a one-line :class:`~rnnkit.errors.RnnkitError` naming the task.
The command line calls the same objects, so there is one implementation of each.
"""

from __future__ import annotations

import os

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


def load(path: str | os.PathLike, device: str = "auto") -> Pretrained:
    """Load a checkpoint written by ``rnnkit train`` for inference on ``device``: the
    checkpoint's task's inference object (its ``inference`` class; :class:`Pretrained` for a
    task without one).

    A file that is not a usable checkpoint (a folder, foreign, truncated, unsafe, incomplete,
    or with weights that do not fit its config) raises a one-line error naming it.
    """
    state = load_checkpoint(path)
    with rebuilding(path):
        task = task_from_checkpoint(state)
        model = task.model_from_checkpoint(state)
    inference = type(task).inference or Pretrained
    return inference(task, model, state, pick_device(device), path)
