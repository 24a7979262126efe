"""Inference objects: what :func:`rnnkit.load` returns, one class per task.

:class:`~rnnkit.tasks.inference.base.Pretrained` is the shared base (model, task, device,
``task_name``, ``data_task``, and the command line's ``generate`` / ``score`` hooks);
each task's class (``LanguageModel``, ``Translator``, ``Tagger``, ``Classifier``, in the
modules beside this one) adds only the methods that fit it, and a task names its class in its
``inference`` attribute. Calling a method only another task's class has raises a one-line
:class:`~rnnkit.tasks.inference.base.TaskMismatch` naming the tasks that have it.
"""

from rnnkit.tasks.inference.base import Pretrained, TaskMismatch
from rnnkit.tasks.inference.requests import (
    GenerateOptions,
    LineBatches,
    LinesRequest,
    PairBatches,
    ScoreOptions,
    SplitRequest,
)

__all__ = [
    "GenerateOptions",
    "LineBatches",
    "LinesRequest",
    "PairBatches",
    "Pretrained",
    "ScoreOptions",
    "SplitRequest",
    "TaskMismatch",
]
