"""``rnnkit train``: options are generated from ``TrainConfig`` (one ``--help`` panel per
section); the model's fields and the task's options are added for the ``--arch`` (or DATA) the
command line names (:mod:`rnnkit_cli.train_options`).

No ``from __future__ import annotations`` here: the generated signature must hold real
``Annotated`` objects for typer to read.
"""

import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rnnkit.config import fields_of, kebab, load_file, parse_overrides, resolve
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig, train_config_class
from rnnkit.training.logs import check_logging
from rnnkit.training.loop import TrainingInterrupted, build_run, fit
from rnnkit.training.precision import keep_freed_memory
from rnnkit.training.preflight import check_launch
from rnnkit_cli.common import UserDirOption, dataclass_parameters, set_threads, setup_plugins
from rnnkit_cli.launch import MAX_RESTARTS, NPROC, launch_workers, report_once
from rnnkit_cli.train_options import (
    PLAN,
    VALUES,
    OptionPlan,
    TrainCommand,
    task_owned_fields,
    unknown_option,
)

app = typer.Typer()

EPILOG = (
    "With `--arch NAME`, the fields of that architecture's config are options too, e.g. "
    "`--hidden-size 650 --dropout 0.5`: `rnnkit train --arch NAME --help` lists them, and the "
    "options of its task (e.g. `--bptt` for lm), which DATA also brings in.\n\n"
    "Example: `rnnkit train data-bin/ptb --arch lstm_lm_zaremba_small --save-dir runs/ptb "
    "--lr 1 --lr-scheduler zaremba --max-epoch 13 --clip-norm 5 --loss-average sequences`\n\n"
    "Several machines: `torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d "
    "--rdzv-endpoint HOST:PORT --rdzv-id JOB -m rnnkit_cli train ...` on each (README)."
)


def _config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field, in its section's panel; the fields a task
    owns are hidden until the command line names that task (:mod:`rnnkit_cli.train_options`)."""
    return dataclass_parameters(TrainConfig, hidden=task_owned_fields())


def train(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Argument(
            help="Data directory written by `rnnkit preprocess` or `fairseq-preprocess` (a "
            "data-bin: the task and languages come from its file names), or shards "
            "`DIR0:DIR1:...`: epoch k trains on shard (k-1) mod n; valid/test and dictionaries "
            "from the first."
        ),
    ],
    arch: Annotated[
        str, typer.Option("--arch", "-a", help="Architecture or preset (`rnnkit models`).")
    ],
    save_dir: Annotated[
        Path, typer.Option("--save-dir", help="Where checkpoints and train_log.jsonl go.")
    ],
    config: Annotated[
        Path | None, typer.Option(help="JSON file of training and model options.")
    ] = None,
    source_lang: Annotated[
        str | None,
        typer.Option(
            "-s",
            "--source-lang",
            help="Translation data: the source language, either side of the data's pair "
            "(default: the pair's first, as in its file names train.SRC-TGT.*).",
            rich_help_panel="Data",
        ),
    ] = None,
    target_lang: Annotated[
        str | None,
        typer.Option(
            "-t",
            "--target-lang",
            help="Translation data: the target language (default: the other side of the pair).",
            rich_help_panel="Data",
        ),
    ] = None,
    user_dir: UserDirOption = None,
    nproc_per_node: Annotated[
        int,
        typer.Option(
            NPROC,
            help="Train with N worker processes on this machine (DDP through torchrun: one GPU "
            "each, or gloo on CPU).",
            rich_help_panel="Distributed",
        ),
    ] = 1,
    max_restarts: Annotated[
        int,
        typer.Option(
            MAX_RESTARTS,
            help="When a worker fails, stop and restart all workers up to N times; each resumes "
            "from SAVE_DIR/checkpoint_last.pt (torch's elastic agent; under plain torchrun give "
            "torchrun --max-restarts).",
            rich_help_panel="Distributed",
        ),
    ] = 0,
    **options: Any,
) -> None:
    """Train a model on binarized data; resumes from `SAVE_DIR/checkpoint_last.pt` if present."""
    if nproc_per_node < 1:
        raise RnnkitError(f"{NPROC} must be at least 1")
    if max_restarts < 0:
        raise RnnkitError(f"{MAX_RESTARTS} must be at least 0 (got {max_restarts})")
    setup_plugins(user_dir)
    plan: OptionPlan = ctx.meta.get(PLAN) or OptionPlan()
    added = ctx.meta.get(VALUES, {})
    model_flags = _model_flags(ctx, plan, added)
    cfg_class = train_config_class(plan.task.train_options if plan.task else None)
    train_fields = set(fields_of(cfg_class))
    file_layer = load_file(config) if config else {}
    file_train = {k: v for k, v in file_layer.items() if k.replace("-", "_") in train_fields}
    file_model = {k: v for k, v in file_layer.items() if k.replace("-", "_") not in train_fields}
    # Only options given on the command line override the file; typer fills in the rest.
    given = {k: v for k, v in options.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
    given |= {k: v for k, v in added.items() if k not in plan.model_fields}
    cfg = resolve(cfg_class, file_train, given)
    if os.environ.get("RANK", "0") == "0":  # rank 0 alone writes logs: refuse bad ones first
        check_logging(cfg)
    task = load_task(data, langs=(source_lang, target_lang))
    # On resume, the options given here (flags and --config) win over the checkpoint's.
    named = {*given, *(k.replace("-", "_") for k in file_train)}
    if nproc_per_node > 1 or max_restarts > 0:  # checked once here, before any worker
        check_launch(cfg, task, arch, [file_model, model_flags], save_dir, named, nproc_per_node)
        launch_workers(nproc_per_node, sys.argv[1:], max_restarts)
    set_threads(cfg.threads)  # process-wide: the command line's to set, not the library's
    keep_freed_memory()  # process-wide too: reuse each update's big buffers (precision.py)
    try:
        fit(build_run(cfg, task, arch, [file_model, model_flags], save_dir, given=named))
    except TrainingInterrupted:
        # Every worker stops after the same update (the stop votes are all-reduced), so all
        # reach this point: leave the group, or a live group can stall or abort at exit.
        distributed.teardown()
        raise
    distributed.teardown()  # after success; a failed worker just exits


def _model_flags(ctx: typer.Context, plan: OptionPlan, added: dict[str, Any]) -> dict[str, Any]:
    """The model fields given on the command line; with a known ``--arch`` every field is an
    option, so anything left over is unknown (suggested from all options)."""
    leftovers = parse_overrides(ctx.args)
    if leftovers and plan.arch is not None:
        raise unknown_option(next(iter(leftovers)), ctx, plan.arch)
    return {kebab(k): v for k, v in added.items() if k in plan.model_fields} | leftovers


train.__signature__ = inspect.signature(train).replace(  # type: ignore[attr-defined]
    parameters=[
        p
        for p in inspect.signature(train).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    + _config_parameters()
)
app.command(
    "train",
    cls=TrainCommand,
    epilog=EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(report_once(train))
