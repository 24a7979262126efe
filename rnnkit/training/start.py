"""Where a training run starts: afresh, resumed from its save dir, restored from another run's
checkpoint (``--restore-file PATH``) or fine-tuned from a model (``--finetune-from-model``).

:func:`find_start` reads the checkpoint a run starts from (on rank 0; the caller hands it to the
workers) and :func:`plan_start` decides with which options and model config, before anything is
built. The rules:

- ``--restore-file NAME`` (a bare name, default ``checkpoint_last.pt``) is looked up in
  ``--save-dir``: the run there resumes if the file exists, else the run starts afresh.
- ``--restore-file PATH`` (a path: it has a ``/``, or it is not in ``--save-dir`` but exists)
  resumes another run's state (weights, optimizer, schedule, counters) into this save dir.
- ``--finetune-from-model CKPT`` loads the weights only: optimizer, schedule, counters, data
  position and best score start fresh. The model must be the checkpoint's (``--arch`` and every
  field that shapes the weights; dropout-like fields may change) and the data's dictionaries
  must equal the checkpoint's.
- Both record where they came from in the checkpoints they write (``started_from``). When
  ``--save-dir`` already holds a ``checkpoint_last.pt``, the SAME command resumes it (the run it
  started earlier is continuing); a ``checkpoint_last.pt`` of any other run is refused with one
  line. fairseq fine-tunes only when the save dir has no ``checkpoint_last.pt`` and otherwise
  resumes whatever is there; rnnkit refuses to continue a run it was not asked to.
- ``--reset`` ignores whatever ``--save-dir`` holds (a fine-tune or a restore from a path still
  applies).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rnnkit.errors import RnnkitError
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.config import CheckpointingOptions, TrainConfig
from rnnkit.training.resume import (
    ResumePlan,
    check_dictionaries,
    merge_model_layers,
    plan_resume,
)

if TYPE_CHECKING:
    from rnnkit.tasks.base import Task

LAST = "checkpoint_last.pt"
DEFAULT_RESTORE = CheckpointingOptions.restore_file


@dataclass(frozen=True)
class Start:
    """The checkpoint a run starts from and how it uses it."""

    kind: Literal["fresh", "resume", "restore", "finetune"] = "fresh"
    path: Path | None = None  # the checkpoint read
    state: dict[str, Any] | None = field(default=None, repr=False)
    # What the run records in its checkpoints: {"how": "finetune" | "restore", "path": abs path}
    origin: dict[str, str] | None = None


def restore_path(cfg: TrainConfig, save_dir: Path) -> tuple[Path, bool]:
    """``--restore-file``'s file and whether it is another run's (a path, not a name in
    ``save_dir``)."""
    name = cfg.restore_file
    mine = save_dir / name
    if "/" in name or (not mine.is_file() and name != DEFAULT_RESTORE and Path(name).is_file()):
        path = Path(name)
        if path.resolve().parent == save_dir.resolve():  # a path to a file of this save dir
            return path, False
        return path, True
    return mine, False


def _origin(how: str, path: Path) -> dict[str, str]:
    return {"how": how, "path": str(path.resolve())}


def find_start(cfg: TrainConfig, save_dir: Path) -> Start:
    """Read the checkpoint this run starts from (see the module's rules); one-line errors for a
    refused combination or a save dir that holds another run."""
    restore, foreign = restore_path(cfg, save_dir)
    tune = cfg.finetune_from_model
    if tune and cfg.restore_file != DEFAULT_RESTORE:
        raise RnnkitError(
            "--finetune-from-model loads weights only and --restore-file a whole run; give one"
        )
    if tune:
        origin: dict[str, str] | None = _origin("finetune", Path(tune))
    else:
        origin = _origin("restore", restore) if foreign else None
    last = save_dir / LAST
    if origin is None:
        if cfg.reset or not restore.is_file():
            return Start()
        return Start("resume", restore, ckpt.load_checkpoint(restore, resume=True))
    if last.is_file() and not cfg.reset:
        state = ckpt.load_checkpoint(last, resume=True)
        if state.get("started_from") != origin:
            flag = "--finetune-from-model" if tune else "--restore-file"
            raise RnnkitError(
                f"{flag}: {last} holds another run; resume it without {flag}, or use another "
                "--save-dir (or --reset to start over there)"
            )
        return Start("resume", last, state, origin)
    if tune:
        return Start("finetune", Path(tune), ckpt.load_checkpoint(tune), origin)
    try:
        state = ckpt.load_checkpoint(restore, resume=True)
    except RnnkitError as e:
        if not any(f"no {key!r} entry" in str(e) for key in ckpt.RESUME_KEYS):
            raise
        raise RnnkitError(
            f"--restore-file: {e} (a model without a run's state, e.g. from `rnnkit average`: "
            "start from its weights with --finetune-from-model)"
        ) from None
    return Start("restore", restore, state, origin)


def plan_finetune(
    task: Task,
    arch: str,
    model_layers: Sequence[Mapping[str, Any] | None],
    state: Mapping[str, Any],
    source: Path,
) -> list[Mapping[str, Any]]:
    """The model layers of a run fine-tuned from checkpoint ``state``: its model config, then
    the given fields (dropout-like ones only may differ); the task and the dictionaries must be
    the checkpoint's."""
    if state.get("task") != task.name:
        raise RnnkitError(
            f"--finetune-from-model: {source} is for task {state.get('task')!r}, not {task.name!r}"
        )
    check_dictionaries(task, state, source, "--finetune-from-model")
    layers, _ = merge_model_layers(arch, state, model_layers, source, "--finetune-from-model")
    return layers


def plan_start(
    cfg: TrainConfig,
    given: Collection[str] | None,
    task: Task,
    arch: str,
    model_layers: Sequence[Mapping[str, Any] | None],
    start: Start,
) -> tuple[TrainConfig, list[Mapping[str, Any] | None], ResumePlan | None]:
    """The options and model layers a run from ``start`` is built with, and how it resumes
    (None: it does not)."""
    if start.state is None or start.path is None:
        return cfg, list(model_layers), None
    if start.kind == "finetune":
        return cfg, list(plan_finetune(task, arch, model_layers, start.state, start.path)), None
    plan = plan_resume(cfg, given, task, arch, model_layers, start.state, start.path)
    return plan.cfg, list(plan.model_layers), plan
