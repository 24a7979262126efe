"""The options of ``rnnkit train`` that depend on the command line: the model's, and the task's.

``--arch`` and ``--user-dir`` are read first (:func:`plan_options`), before the command parses
anything, so the architecture's config fields become real options (typed in ``--help``, with the
preset's defaults) and the options the task declares (its ``train_options`` dataclass) are listed
only when they apply: when ``--arch`` or the DATA argument names a model or data of that task.
:class:`TrainCommand` adds those options to the command for this one invocation.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from rnnkit.config import BOOL_WORDS, fields_of, kebab, type_name
from rnnkit.errors import RnnkitError
from rnnkit.models import ARCH_REGISTRY, MODEL_REGISTRY
from rnnkit.registry import suggest
from rnnkit.tasks import TASK_REGISTRY, data_task_name
from rnnkit.training.config import SECTIONS, TASK_SECTIONS, TrainConfig
from rnnkit_cli.common import click_options, dataclass_parameters, setup_plugins

PLAN = "rnnkit.train.plan"  # ctx.meta keys
VALUES = "rnnkit.train.values"


@dataclass(frozen=True)
class OptionPlan:
    """What one ``rnnkit train`` command line adds to the command's static options."""

    arch: str | None = None  # a registered architecture (None: unknown or not given)
    task: type | None = None  # the task class that --arch or DATA names
    model_fields: tuple[str, ...] = ()  # model config fields that are options now
    bool_fields: tuple[str, ...] = ()  # of those, booleans (``--name`` alone means true)
    shown: frozenset[str] = frozenset()  # TrainConfig fields (hidden by default) to list
    params: list[Any] = field(default_factory=list)  # click options added for this command line

    def names(self) -> set[str]:
        """The parameter names of the added options."""
        return {p.name for p in self.params}


def task_owned_fields() -> frozenset[str]:
    """TrainConfig fields that belong to one task's section, hidden unless that task applies."""
    return frozenset(f.name for s in TASK_SECTIONS for f in dataclasses.fields(s))


def _scan(args: list[str]) -> tuple[str | None, list[str], list[str]]:
    """``--arch``, the ``--user-dir`` folders, and the words that may be DATA, from ``args``."""
    found: dict[str, list[str]] = {"--arch": [], "--user-dir": []}
    words = []
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if name in found and eq:
            found[name].append(value)
        elif a in ("--arch", "-a", "--user-dir") and i + 1 < len(args):
            found["--arch" if a == "-a" else a].append(args[i + 1])
            i += 1
        elif a.startswith("-a") and not a.startswith("--") and len(a) > 2:
            found["--arch"].append(a[2:])
        elif not a.startswith("-"):
            words.append(a)
        i += 1
    arch = found["--arch"][-1] if found["--arch"] else None
    return arch, found["--user-dir"], words


def _task_of_data(words: list[str]) -> type | None:
    """The task class of the first word that is a data directory (or shards) of a known task."""
    for word in words:
        first = Path(word.split(":")[0])
        if not first.is_dir():
            continue
        try:
            name = data_task_name(first)  # preprocess.json's, or a fairseq data-bin's
        except RnnkitError:
            continue
        if name in TASK_REGISTRY:
            return TASK_REGISTRY.get(name)
    return None


def _metavar(tp: Any) -> str:
    """``<int>``, ``<float | None>``, ``<lstm|gru>``: how a model field's value is written."""
    return f"<{type_name(tp)}>"


def model_parameters(arch: str, taken: set[str]) -> list[inspect.Parameter]:
    """One option per field of ``arch``'s model config (except names in ``taken``).

    Values stay strings: :func:`rnnkit.models.resolve_arch` converts them as it converts a
    config file's, so errors read as before. The default shown is the preset's.
    """
    preset = ARCH_REGISTRY.get(arch)
    cls = MODEL_REGISTRY.get(preset.model)
    panel = f"Model: {arch} (model {preset.model})"
    params = []
    for name, f in fields_of(cls.config_class).items():
        if name in taken:
            continue  # a training option of that name wins, as it always has
        help_ = f.metadata.get("help", "") or f"{cls.config_class.__name__}.{name}"
        default = preset.overrides.get(name, f.default)
        if name in preset.overrides:
            help_ += f" (default set by the preset {arch})"
        if default is dataclasses.MISSING:
            default, help_ = None, f"{help_} [required]"
        elif isinstance(default, tuple | list):
            default = ",".join(map(str, default))
        option = typer.Option(
            f"--{kebab(name)}", help=help_, rich_help_panel=panel, metavar=_metavar(f.type)
        )
        # the default is shown, never passed on: only options given on the command line are
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY,
                default=None if default is None else str(default),
                annotation=Annotated[str | None, option],
            )
        )  # fmt: skip
    return params


def plan_options(args: list[str], static: set[str]) -> OptionPlan:
    """Read ``--user-dir``, ``--arch`` and DATA from ``args`` and plan the options they add.

    ``static``: the command's own parameter names (a model field of one of those names stays
    the training option it has always been).
    """
    arch, user_dirs, words = _scan(args)
    setup_plugins([Path(d) for d in user_dirs])
    task, model, bools = None, [], []
    if arch is not None and arch in ARCH_REGISTRY:
        model_cls = MODEL_REGISTRY.get(ARCH_REGISTRY.get(arch).model)
        model = model_parameters(arch, static)
        bools = [n for n, f in fields_of(model_cls.config_class).items() if f.type is bool]
        if model_cls.task_name in TASK_REGISTRY:
            task = TASK_REGISTRY.get(model_cls.task_name)
    else:
        arch = None  # unknown: the command reports it with the valid names, as before
    task = task or _task_of_data(words)
    options = task.train_options if task is not None else None
    shown, extra = frozenset(), []
    if options is not None:
        own = set(fields_of(options))
        shown = frozenset(own & set(fields_of(TrainConfig)))
        taken = static | {p.name for p in model}
        extra = [p for p in dataclass_parameters(options, panel=lambda f: _task_panel(f, task))
                 if p.name not in shown and p.name not in taken]  # fmt: skip
    return OptionPlan(
        arch=arch, task=task, model_fields=tuple(p.name for p in model),
        bool_fields=tuple(n for n in bools if n not in static),
        shown=shown, params=click_options(model + extra),
    )  # fmt: skip


def _task_panel(f: dataclasses.Field, task: type) -> str:
    """A plugin task's option is listed in its own panel unless its metadata names one."""
    return f.metadata.get("group") or f"Task options ({task.name})"


def explicit_bools(args: list[str], bool_fields: tuple[str, ...]) -> list[str]:
    """``--tie-weights`` without a value → ``--tie-weights=true``.

    Model booleans take a value (``--tie-weights false``) or none, as they always have; a click
    option takes exactly one, so where the next word is not a boolean (another option, DATA,
    nothing) the value is written in.
    """
    flags = {f"--{kebab(n)}" for n in bool_fields}
    out = []
    for i, a in enumerate(args):
        after = args[i + 1] if i + 1 < len(args) else None
        alone = after is None or after.lower() not in BOOL_WORDS
        out.append(f"{a}=true" if a in flags and alone else a)
    return out


def unknown_option(key: str, ctx: typer.Context, arch: str) -> RnnkitError:
    """The error for an option neither the training config nor ``arch``'s model has."""
    params = ctx.command.get_params(ctx)
    names = [o for p in params for o in getattr(p, "opts", []) if o.startswith("--")]
    return RnnkitError(
        f"unknown option --{key} of rnnkit train --arch {arch}{suggest(f'--{key}', names)}"
    )


class TrainCommand(TyperCommand):
    """A typer command that adds the options :func:`plan_options` plans for its command line."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            plan = plan_options(args, {p.name for p in self.params if p.name})
        except RnnkitError:
            if not ctx.resilient_parsing:  # shell completion goes on without the extras
                raise
            plan = OptionPlan()
        ctx.meta[PLAN] = plan
        return super().parse_args(ctx, explicit_bools(args, plan.bool_fields))

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)
        plan: OptionPlan | None = ctx.meta.get(PLAN)
        if plan is None:
            return params
        params = [_unhidden(p) if p.name in plan.shown else p for p in params] + plan.params
        return sorted(params, key=_panel_rank)

    def invoke(self, ctx: typer.Context) -> Any:
        # typer's callback takes only the static parameters: hand the added ones over in meta
        plan: OptionPlan | None = ctx.meta.get(PLAN)
        added = plan.names() if plan else set()
        values = {n: ctx.params.pop(n) for n in list(ctx.params) if n in added}
        given = {n: v for n, v in values.items() if ctx.get_parameter_source(n).name != "DEFAULT"}
        ctx.meta[VALUES] = given
        return super().invoke(ctx)


PANELS = (
    None,
    "Model",
    "Task options",
    *(dataclasses.fields(section)[0].metadata["group"] for section in SECTIONS),
    "Plugins",
)


def _panel_rank(param: Any) -> int:
    """Where ``param``'s panel comes in ``--help``: the model's and the task's first."""
    panel = getattr(param, "rich_help_panel", None)
    head = panel.split(":")[0].split(" (")[0] if panel else None
    return PANELS.index(head) if head in PANELS else len(PANELS)


def _unhidden(param: Any) -> Any:
    shown = copy.copy(param)
    shown.hidden = False
    return shown
