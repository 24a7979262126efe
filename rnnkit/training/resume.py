"""Resuming a run: the checkpoint's options, overridden by the ones given this time.

Running ``rnnkit train`` again on a save dir continues the run stored there (fairseq's habit).
:func:`plan_resume` decides, before anything is built, with which options:

- **Training options** (:class:`~rnnkit.training.config.TrainConfig`) are the checkpoint's
  ``train_config``, overridden by every option given this time (command line or ``--config``
  file). That covers the learning rate and its schedule, ``--max-epoch``/``--max-update``,
  ``--patience``, ``--clip-norm``, batch size and BPTT, ``--update-freq``, the loss, optimizer
  hyperparameters, validation and checkpoint options and ``--amp``. Each option that changes
  is reported on one line, ``resume: --lr 0.01 -> 0.001``. A key the checkpoint lacks (an older
  rnnkit) takes this run's value.
- :data:`LOCAL` options belong to one invocation and are never inherited: the device, threads,
  ``--compile``, ``--ddp-timeout``, ``--log-interval``, ``--stop-time-hours`` (wall time of this
  run), ``--restore-file``, ``--reset`` and ``--reset-optimizer``.
- ``--seed`` is kept from the checkpoint (:data:`KEPT`): a resumed run continues the saved
  random state, so another seed would only be a false record; it is reported as ignored.
- ``--optimizer`` may change only with ``--reset-optimizer`` (fairseq's meaning: weights,
  schedule and progress are loaded, the optimizer starts fresh). A new ``--lr-scheduler``
  starts the new schedule at the run's current epoch and update. A new
  ``--best-checkpoint-metric`` (or its direction) forgets the best value so far.
- **Model options**: ``--arch`` must be the checkpoint's. A model field not given keeps the
  checkpoint's value; a given one may differ only if its field is marked ``resumable``
  (:func:`rnnkit.config.opt`: dropouts and other settings that leave the weights' shapes and
  meaning alone). Anything else, or a data directory whose dictionaries differ from the
  checkpoint's, is refused with one line naming it and the way out (another ``--save-dir``,
  or ``--reset``).

How the learning-rate schedules take a new ``--lr`` is :meth:`Schedule.rebase
<rnnkit.training.optim.Schedule.rebase>`'s business.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnkit.config import fields_of, kebab, resolve, to_dict
from rnnkit.errors import RnnkitError
from rnnkit.models import resolve_arch
from rnnkit.training.config import TrainConfig

if TYPE_CHECKING:
    from rnnkit.tasks.base import Task

LOCAL = frozenset(
    {"device", "threads", "compile", "ddp_timeout", "log_interval", "log_format", "log_file",
     "tensorboard_logdir", "stop_time_hours", "restore_file", "finetune_from_model", "reset",
     "reset_optimizer", "reset_lr_scheduler", "reset_dataloader", "reset_meters"}
)  # fmt: skip
KEPT = frozenset({"seed"})
WAY_OUT = "use another --save-dir, or --reset to start over"


@dataclass(frozen=True)
class ResumePlan:
    """How a run continues from a checkpoint: its options and what to load fresh."""

    cfg: TrainConfig
    model_layers: list[Mapping[str, Any]]  # the checkpoint's model config, then the given fields
    messages: tuple[str, ...] = ()  # one line per change, for the log
    fresh_optimizer: bool = False  # --reset-optimizer: do not load the optimizer's state
    fresh_schedule: bool = False  # --lr-scheduler changed: do not load the schedule's state
    new_lr: bool = False  # the schedule continues from a new base --lr
    forget_best: bool = False  # --best-checkpoint-metric (or its direction) changed
    changed: frozenset[str] = field(default_factory=frozenset)  # TrainConfig fields that changed


def show(value: Any) -> str:
    """An option's value as it is written on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ",".join(map(show, value))
    return str(value)


def merge_train_config(
    cfg: TrainConfig, saved: Mapping[str, Any], given: Collection[str] | None
) -> tuple[TrainConfig, dict[str, tuple[Any, Any]], list[str]]:
    """The resumed run's options: ``saved`` (a checkpoint's ``train_config``) overridden by the
    fields of ``cfg`` named in ``given`` (None: all of them, as a library caller states its
    whole config) and by the :data:`LOCAL` ones.

    Returns the config, the changed fields as ``{name: (old, new)}`` and notes for the log.
    """
    fields = fields_of(type(cfg))  # a plugin task's options make a subclass (train_config_class)
    wanted = set(fields) if given is None else {k.replace("-", "_") for k in given}
    values: dict[str, Any] = {}
    notes = []
    for name in fields:
        mine = getattr(cfg, name)
        if name not in saved or name in LOCAL:
            values[name] = mine
        elif name in KEPT:
            values[name] = saved[name]
            if name in wanted and show(mine) != show(saved[name]):
                notes.append(
                    f"resume: --{kebab(name)} {show(mine)} ignored: a resumed run continues the "
                    f"checkpoint's random state (--{kebab(name)} {show(saved[name])})"
                )
        else:
            values[name] = mine if name in wanted else saved[name]
    merged = resolve(type(cfg), values, source="option in the checkpoint's train_config")
    changed = {
        name: (saved[name], getattr(merged, name))
        for name in fields
        if name in saved and name not in LOCAL and show(saved[name]) != show(getattr(merged, name))
    }
    return merged, changed, notes


def merge_model_layers(
    arch: str, state: Mapping[str, Any], layers: Sequence[Mapping[str, Any] | None], source: Path
) -> tuple[list[Mapping[str, Any]], dict[str, tuple[Any, Any]]]:
    """The model layers of a resumed run: the checkpoint's model config, then the given
    ``layers``. Refuses another ``--arch`` and a changed field not marked ``resumable``;
    returns the layers and the changed fields as ``{name: (old, new)}``."""
    saved_arch = state.get("arch")
    if arch != saved_arch:
        raise RnnkitError(
            f"--arch {arch}: {source} was trained with --arch {saved_arch}; {WAY_OUT}"
        )
    saved_layer = dict(state.get("model_config") or {})
    cls, old = resolve_arch(arch, saved_layer)
    _, new = resolve_arch(arch, saved_layer, *layers)
    fields = fields_of(cls.config_class)
    old_d, new_d = to_dict(old), to_dict(new)
    changed = {k: (old_d[k], new_d[k]) for k in fields if show(old_d[k]) != show(new_d[k])}
    fixed = [k for k in changed if not fields[k].metadata.get("resumable", False)]
    if fixed:
        what = ", ".join(
            f"--{kebab(k)} {show(changed[k][0])} -> {show(changed[k][1])}" for k in fixed
        )
        raise RnnkitError(
            f"resume: {what} would change the model of {source} (a resumed run may change "
            f"only dropout-like options); {WAY_OUT}"
        )
    return [saved_layer, *(layer for layer in layers if layer)], changed


def check_dictionaries(task: Task, state: Mapping[str, Any], source: Path) -> None:
    """Refuse a data directory whose dictionaries differ from the checkpoint's."""
    saved = state.get("dictionaries")
    if saved is None:
        return
    mine = task.checkpoint_data().get("dictionaries", {})
    for name in sorted(set(saved) | set(mine)):
        if saved.get(name) != mine.get(name):
            where = f" of {task.data_dir}" if task.data_dir else ""
            raise RnnkitError(
                f"resume: the {name!r} dictionary{where} differs from the one {source} was "
                f"trained with; train on that data, or {WAY_OUT}"
            )


def plan_resume(
    cfg: TrainConfig,
    given: Collection[str] | None,
    task: Task,
    arch: str,
    model_layers: Sequence[Mapping[str, Any] | None],
    state: Mapping[str, Any],
    source: Path,
) -> ResumePlan:
    """How a run with options ``cfg`` (of which ``given`` were given this time; None: all) and
    model ``arch`` + ``model_layers`` resumes from checkpoint ``state`` read from ``source``.

    Raises a one-line :class:`RnnkitError` for what cannot change on resume.
    """
    if state.get("task") != task.name:
        raise RnnkitError(
            f"{source} is for task {state.get('task')!r}, not {task.name!r}; {WAY_OUT}"
        )
    check_dictionaries(task, state, source)
    layers, model_changes = merge_model_layers(arch, state, model_layers, source)
    merged, changed, notes = merge_train_config(cfg, state.get("train_config") or {}, given)
    fresh_optimizer = merged.reset_optimizer
    if "optimizer" in changed and not fresh_optimizer:
        old, new = changed["optimizer"]
        raise RnnkitError(
            f"resume: --optimizer {new} differs from the {old} of {source}; add "
            f"--reset-optimizer to continue with a fresh {new} optimizer (weights and progress "
            f"kept), or {WAY_OUT}"
        )
    lines = [f"resume: --{kebab(k)} {show(a)} -> {show(b)}" for k, (a, b) in changed.items()]
    lines += [f"resume: --{kebab(k)} {show(a)} -> {show(b)}" for k, (a, b) in model_changes.items()]
    if fresh_optimizer:
        lines.append(f"resume: --reset-optimizer: a fresh {merged.optimizer} optimizer")
    forget = bool({"best_checkpoint_metric", "maximize_best_checkpoint_metric"} & set(changed))
    if forget:
        lines.append("resume: the best validation so far is forgotten (another metric)")
    return ResumePlan(
        cfg=merged,
        model_layers=layers,
        messages=(*notes, *lines),
        fresh_optimizer=fresh_optimizer,
        fresh_schedule="lr_scheduler" in changed,
        new_lr="lr" in changed,
        forget_best=forget,
        changed=frozenset(changed),
    )
