"""``rnnkit train``: options are generated from ``TrainConfig``; model fields follow ``--arch``.

No ``from __future__ import annotations`` here: the generated signature must hold real
``Annotated`` objects for typer to read.
"""

import inspect
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer

from rnnkit.config import fields_of, kebab, load_file, parse_overrides, resolve
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import TrainingInterrupted, build_run, fit
from rnnkit.training.preflight import check_launch
from rnnkit_cli.common import UserDirOption, setup_plugins
from rnnkit_cli.launch import MAX_RESTARTS, NPROC, launch_workers, report_once

app = typer.Typer()

EPILOG = (
    "Any other `--field-name VALUE` sets a field of the architecture's config, e.g. "
    "`--hidden-size 650 --dropout 0.5`; `rnnkit models ARCH` lists them.\n\n"
    "Example: `rnnkit train data-bin/ptb --arch lstm_lm_zaremba_small --save-dir runs/ptb "
    "--lr 1 --lr-scheduler zaremba --max-epoch 13 --clip-norm 5 --loss-average sequences`\n\n"
    "Several machines: `torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d "
    "--rdzv-endpoint HOST:PORT --rdzv-id JOB -m rnnkit_cli train ...` on each (README)."
)


def _cli_type(tp: Any) -> Any:
    """The type typer parses for a config field (Literals and tuples arrive as strings)."""
    origin = get_origin(tp)
    if origin is Literal or origin is tuple:
        return str
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _cli_type(inner[0]) | None
    return tp


def _config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field, with help and panel from its metadata."""
    params = []
    for name, f in fields_of(TrainConfig).items():
        tp = _cli_type(f.type)
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        option = typer.Option(
            f"--{kebab(name)}",
            help=f.metadata["help"],
            rich_help_panel=f.metadata["group"],
            show_default=True,
        )
        if tp is bool:
            option = typer.Option(
                f"--{kebab(name)}/--no-{kebab(name)}",
                help=f.metadata["help"],
                rich_help_panel=f.metadata["group"],
            )
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[tp, option],
            )
        )
    return params


def train(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Argument(
            help="Data directory written by `rnnkit preprocess`, or shards `DIR0:DIR1:...`: "
            "epoch k trains on shard (k-1) mod n; valid/test and dictionaries from the first."
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
    user_dir: UserDirOption = None,
    nproc_per_node: Annotated[
        int,
        typer.Option(
            NPROC,
            help="Train with N worker processes on this machine (DDP through torchrun: one GPU "
            "each, or gloo on CPU).",
            rich_help_panel="Scale and speed",
        ),
    ] = 1,
    max_restarts: Annotated[
        int,
        typer.Option(
            MAX_RESTARTS,
            help="When a worker fails, stop and restart all workers up to N times; each resumes "
            "from SAVE_DIR/checkpoint_last.pt (torch's elastic agent; under plain torchrun give "
            "torchrun --max-restarts).",
            rich_help_panel="Scale and speed",
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
    train_fields = set(fields_of(TrainConfig))
    file_layer = load_file(config) if config else {}
    file_train = {k: v for k, v in file_layer.items() if k.replace("-", "_") in train_fields}
    file_model = {k: v for k, v in file_layer.items() if k.replace("-", "_") not in train_fields}
    # Only options given on the command line override the file; typer fills in the rest.
    given = {k: v for k, v in options.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
    cfg = resolve(TrainConfig, file_train, given)
    task = load_task(data)
    model_flags = parse_overrides(ctx.args)
    # On resume, the options given here (flags and --config) win over the checkpoint's.
    named = {*given, *(k.replace("-", "_") for k in file_train)}
    if nproc_per_node > 1 or max_restarts > 0:  # checked once here, before any worker
        check_launch(cfg, task, arch, [file_model, model_flags], save_dir, named, nproc_per_node)
        launch_workers(nproc_per_node, sys.argv[1:], max_restarts)
    try:
        fit(build_run(cfg, task, arch, [file_model, model_flags], save_dir, given=named))
    except TrainingInterrupted:
        # Every worker stops after the same update (the stop votes are all-reduced), so all
        # reach this point: leave the group, or a live group can stall or abort at exit.
        distributed.teardown()
        raise
    distributed.teardown()  # after success; a failed worker just exits


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
    epilog=EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(report_once(train))
