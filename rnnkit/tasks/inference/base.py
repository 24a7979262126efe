"""The base of every inference object: model, task, device, and the command line's hooks.

:func:`rnnkit.load` rebuilds a checkpoint's task and model and returns an instance of the
task's ``inference`` class, a subclass of :class:`Pretrained` with only the methods that fit
the task. A method that only another task's class has raises :class:`TaskMismatch`, one line
naming the tasks that have it (found in the task registry, so a plugin task's methods are
named too). ``rnnkit generate`` and ``rnnkit score`` call the hooks here
(:meth:`Pretrained.generate_split`, :meth:`~Pretrained.generate_lines`,
:meth:`~Pretrained.score_split`, :meth:`~Pretrained.score_lines`) and never ask which task a
model is; a task that cannot do one keeps the default, a one-line error.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any, ClassVar

import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.inference.requests import (
    GenerateOptions,
    LineBatches,
    LinesRequest,
    ScoreOptions,
    SplitRequest,
)


class TaskMismatch(RnnkitError, AttributeError):
    """A method of another task's inference object was asked for (``hasattr`` is False)."""


def offering(method: str) -> list[tuple[str, type]]:
    """The registered tasks (name, inference class), sorted, whose class has ``method``."""
    from rnnkit.tasks import TASK_REGISTRY

    found = []
    for entry in TASK_REGISTRY:
        cls = entry.obj.inference
        if cls is not None and callable(getattr(cls, method, None)):
            found.append((entry.name, cls))
    return found


def _listed(names: list[str]) -> str:
    """``a, b and c``."""
    return " and ".join(filter(None, [", ".join(names[:-1]), *names[-1:]]))


class Pretrained:
    """A trained model ready for inference, with its task's dictionaries and tokenizer.

    ``shown_names`` maps a method to the name its mismatch error gives (a streaming variant
    named after the method users know); ``generate_hint`` is added to the error of
    ``rnnkit generate`` for a task it cannot decode; ``ensemble_class`` wraps several models
    of the task as one (:mod:`rnnkit.generation.ensemble`; None: the task has no ensembles).
    ``paths`` and ``models`` list the checkpoints and models (several for an ensemble, whose
    ``model`` is the wrapper).
    """

    shown_names: ClassVar[dict[str, str]] = {}
    generate_hint: ClassVar[str] = ""
    ensemble_class: ClassVar[type[torch.nn.Module] | None] = None

    def __init__(
        self,
        task: Any,
        model: torch.nn.Module,
        state: dict[str, Any],
        device: torch.device,
        path: str | os.PathLike = "<checkpoint>",
    ) -> None:
        self.task, self.model, self.device = task, model, device
        self.arch: str = state["arch"]
        self.task_name: str = state["task"]
        self.train_config: dict[str, Any] = state.get("train_config", {})
        self.path = os.fspath(path)
        self.paths: list[str] = [self.path]
        self.models: list[torch.nn.Module] = [model]
        self.model.to(device).eval()

    def __getattr__(self, name: str) -> Any:
        # Only called when ``name`` is not found: this task's class lacks it.
        tasks = [] if name.startswith("_") else offering(name)
        if not tasks:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise self.mismatch(name, tasks)

    def mismatch(self, method: str, tasks: list[tuple[str, type]] | None = None) -> TaskMismatch:
        """The error for ``method`` (of the tasks in ``tasks``, default: all that have it)."""
        tasks = offering(method) if tasks is None else tasks
        shown = tasks[0][1].shown_names.get(method, method) if tasks else method
        return TaskMismatch(
            f"{shown}() needs a model of task {' or '.join(n for n, _ in tasks)}; this "
            f"checkpoint is task {self.task_name!r}"
        )

    def data_task(self, data_dir: str | os.PathLike) -> Any:
        """The task of the binarized ``data_dir``: of this model's task, with its dictionaries."""
        from rnnkit.tasks import load_task

        task = load_task(data_dir, expect=self.task_name)
        ours = self.task.checkpoint_data()["dictionaries"]
        theirs = task.checkpoint_data()["dictionaries"]
        for name in sorted(ours.keys() & theirs.keys()):
            if ours[name] != theirs[name]:
                raise RnnkitError(
                    f"{data_dir}: its {name!r} dictionary differs from the model's ({self.arch})"
                )
        return task

    # --- the command line's hooks ---------------------------------------------------------
    def generate_split(self, split: SplitRequest, options: GenerateOptions, out: IO[str]) -> None:
        """``rnnkit generate DATA``: print the decoding of every sentence of a split, then its
        scores."""
        raise self._cannot_generate()

    def generate_lines(
        self, batches: LineBatches, lines: LinesRequest, options: GenerateOptions, out: IO[str]
    ) -> None:
        """``rnnkit generate --input``: one output line per raw line, flushed per batch."""
        raise self._cannot_generate()

    def _cannot_generate(self) -> RnnkitError:
        base = Pretrained.generate_lines
        tasks = [n for n, cls in offering("generate_lines") if cls.generate_lines is not base]
        hint = f" ({self.generate_hint})" if self.generate_hint else ""
        return RnnkitError(
            f"{self.path}: a {self.task_name!r} checkpoint; rnnkit generate decodes "
            f"{_listed(tasks)} models{hint}"
        )

    def score_split(self, split: SplitRequest, options: ScoreOptions, out: IO[str]) -> None:
        """``rnnkit score DATA``: the task's validation metrics (:meth:`evaluate`) on a split."""
        if options.bptt is not None:
            raise RnnkitError(f"--bptt applies to language models, not to {self.task_name}")
        m = self.evaluate(split.data, split.subset, batch_size=split.batch_size)
        shown = " | ".join(f"{k} {v:.4f}" if k == "loss" else f"{k} {v:.2f}"
                           for k, v in m.items() if k not in ("ppl", "tokens"))  # fmt: skip
        record = json.dumps({"subset": split.subset, **m})
        out.write((record if options.as_json else f"{split.subset}: {shown}") + "\n")

    def score_lines(self, batches: LineBatches, lines: LinesRequest, out: IO[str]) -> None:
        """``rnnkit score --input``: one JSON result per raw line, flushed per batch."""
        raise self.mismatch("score")
