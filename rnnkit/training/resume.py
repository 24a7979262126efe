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
  ``--compile``, ``--ddp-timeout``, the log options, ``--stop-time-hours`` (wall time of this
  run), ``--restore-file``, ``--finetune-from-model``, ``--reset`` and the ``--reset-*`` flags.
- ``--seed`` is kept from the checkpoint (:data:`KEPT`): a resumed run continues the saved
  random state, so another seed would only be a false record; it is reported as ignored.
- ``--optimizer`` may change only with ``--reset-optimizer`` (fairseq's meaning: weights,
  schedule and progress are loaded, the optimizer starts fresh). A new ``--lr-scheduler``
  starts the new schedule at the run's current epoch and update. A new
  ``--best-checkpoint-metric`` (or its direction) forgets the best value so far.
- **Resets** (fairseq's): ``--reset-optimizer`` (also implied by a checkpoint written with
  ``--no-save-optimizer-state``), ``--reset-lr-scheduler`` (the schedule's state is not loaded:
  a fresh one from ``--lr``, placed at the run's epoch and update by ``rebase``),
  ``--reset-dataloader`` (the epoch in progress restarts at its first batch; counters kept) and
  ``--reset-meters`` (best value and ``--patience`` count forgotten); each is one log line.
- **Model options**: ``--arch`` must be the checkpoint's. A model field not given keeps the
  checkpoint's value; a given one may differ only if its field is marked ``resumable``
  (:func:`rnnkit.config.opt`: dropouts and other settings that leave the weights' shapes and
  meaning alone). Anything else, or a data directory whose dictionaries differ from the
  checkpoint's, is refused with one line naming it (:func:`check_dictionaries`: the first
  differing entry, or the sizes) and the way out (another ``--save-dir``, or ``--reset``).

Which checkpoint a run starts from (its save dir's, another run's, a model to fine-tune) is
:mod:`rnnkit.training.start`'s business.

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
    forget_best: bool = False  # another --best-checkpoint-metric (or direction), --reset-meters
    fresh_data_position: bool = False  # --reset-dataloader: the epoch restarts at its beginning
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
    arch: str,
    state: Mapping[str, Any],
    layers: Sequence[Mapping[str, Any] | None],
    source: Path,
    what: str = "resume",
) -> tuple[list[Mapping[str, Any]], dict[str, tuple[Any, Any]]]:
    """The model layers of a resumed (or fine-tuned: ``what``) run: the checkpoint's model
    config, then the given ``layers``. Refuses another ``--arch`` and a changed field not marked
    ``resumable``; returns the layers and the changed fields as ``{name: (old, new)}``."""
    saved_arch = state.get("arch")
    way_out = WAY_OUT if what == "resume" else "fine-tune a model of the same architecture"
    kind = "resumed" if what == "resume" else "fine-tuned"
    if arch != saved_arch:
        raise RnnkitError(
            f"--arch {arch}: {source} was trained with --arch {saved_arch}; {way_out}"
        )
    saved_layer = dict(state.get("model_config") or {})
    cls, old = resolve_arch(arch, saved_layer)
    _, new = resolve_arch(arch, saved_layer, *layers)
    fields = fields_of(cls.config_class)
    old_d, new_d = to_dict(old), to_dict(new)
    changed = {k: (old_d[k], new_d[k]) for k in fields if show(old_d[k]) != show(new_d[k])}
    fixed = [k for k in changed if not fields[k].metadata.get("resumable", False)]
    if fixed:
        changes = ", ".join(
            f"--{kebab(k)} {show(changed[k][0])} -> {show(changed[k][1])}" for k in fixed
        )
        raise RnnkitError(
            f"{what}: {changes} would change the model of {source} (a {kind} run may change "
            f"only dropout-like options); {way_out}"
        )
    return [saved_layer, *(layer for layer in layers if layer)], changed


def dictionary_mismatch(saved: Sequence[str] | None, mine: Sequence[str] | None) -> str | None:
    """Where two dictionaries (``dict.txt`` lines; the counts do not matter) first differ, in
    words, or None when they hold the same symbols in the same order."""
    if saved is None or mine is None:
        return "it has none" if saved is None else "this data has none"
    ours = [line.rpartition(" ")[0] for line in mine]
    theirs = [line.rpartition(" ")[0] for line in saved]
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False), 1):
        if a != b:
            return f"entry {i} of dict.txt is {a!r} here, {b!r} there"
    if len(ours) != len(theirs):
        agree = min(len(ours), len(theirs))
        return f"{len(ours)} entries here, {len(theirs)} there (the first {agree} agree)"
    return None


def check_dictionaries(
    task: Task, state: Mapping[str, Any], source: Path, what: str = "resume"
) -> None:
    """Refuse a data directory whose dictionaries differ from the checkpoint's, naming the
    first dictionary that does and where (``what``: the option that loads the checkpoint)."""
    saved = state.get("dictionaries")
    if saved is None:
        return
    mine = task.checkpoint_data().get("dictionaries", {})
    for name in sorted(set(saved) | set(mine)):
        why = dictionary_mismatch(saved.get(name), mine.get(name))
        if why is not None:
            where = f" of {task.data_dir}" if task.data_dir else ""
            way_out = (
                f"train on that data, or {WAY_OUT}"
                if what == "resume"
                else ("preprocess the data with its dictionaries (--srcdict/--tgtdict)")
            )
            raise RnnkitError(
                f"{what}: the {name!r} dictionary{where} differs from the one {source} was "
                f"trained with ({why}); {way_out}"
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
    no_state = "optimizer" not in state  # written with --no-save-optimizer-state
    fresh_optimizer = merged.reset_optimizer or no_state
    if "optimizer" in changed and not fresh_optimizer:
        old, new = changed["optimizer"]
        raise RnnkitError(
            f"resume: --optimizer {new} differs from the {old} of {source}; add "
            f"--reset-optimizer to continue with a fresh {new} optimizer (weights and progress "
            f"kept), or {WAY_OUT}"
        )
    lines = [f"resume: --{kebab(k)} {show(a)} -> {show(b)}" for k, (a, b) in changed.items()]
    lines += [f"resume: --{kebab(k)} {show(a)} -> {show(b)}" for k, (a, b) in model_changes.items()]
    forget = bool({"best_checkpoint_metric", "maximize_best_checkpoint_metric"} & set(changed))
    lines += _reset_lines(merged, state, no_state, forget)
    return ResumePlan(
        cfg=merged,
        model_layers=layers,
        messages=(*notes, *lines),
        fresh_optimizer=fresh_optimizer,
        fresh_schedule="lr_scheduler" in changed or merged.reset_lr_scheduler,
        new_lr="lr" in changed,
        forget_best=forget or merged.reset_meters,
        fresh_data_position=merged.reset_dataloader,
        changed=frozenset(changed),
    )


def _reset_lines(
    cfg: TrainConfig, state: Mapping[str, Any], no_state: bool, forget: bool
) -> list[str]:
    """The log lines that say what a resumed run starts afresh."""
    progress = state.get("progress") or {}
    at = f"epoch {progress.get('epoch', 1)}, update {progress.get('updates', 0)}"
    lines = []
    if no_state and not cfg.reset_optimizer:
        lines.append(
            f"resume: the checkpoint holds no optimizer state (--no-save-optimizer-state): "
            f"a fresh {cfg.optimizer} optimizer"
        )
    elif cfg.reset_optimizer:
        lines.append(f"resume: --reset-optimizer: a fresh {cfg.optimizer} optimizer")
    if cfg.reset_lr_scheduler:
        lines.append(
            f"resume: --reset-lr-scheduler: a fresh {cfg.lr_scheduler} schedule from --lr "
            f"{show(cfg.lr)}, placed at {at}"
        )
    if cfg.reset_dataloader:
        lines.append(
            f"resume: --reset-dataloader: epoch {progress.get('epoch', 1)} restarts from its "
            "first batch"
        )
    if cfg.reset_meters:
        lines.append(
            "resume: --reset-meters: the best validation so far and --patience's count "
            "are forgotten"
        )
    elif forget:
        lines.append("resume: the best validation so far is forgotten (another metric)")
    return lines
