"""``rnnkit average``: average the weights of several checkpoints into one (fairseq's
``scripts/average_checkpoints.py``).

``--inputs CK1 CK2 ...`` averages the files named; ``--inputs DIR --num-epoch-checkpoints N``
(or ``--num-update-checkpoints N``) the newest N epoch (interval) checkpoints of a save dir. The
work is :mod:`rnnkit.training.average`; this module only parses the options. No torch at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()


@app.command(
    "average",
    # `--inputs a.pt b.pt c.pt` (fairseq's form): the values after the first land in ctx.args.
    context_settings={"allow_extra_args": True},
)
def average(
    ctx: typer.Context,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--inputs",
            help="Checkpoints to average (--inputs a.pt b.pt ...), or one save dir with "
            "--num-epoch-checkpoints / --num-update-checkpoints.",
            metavar="CKPT... | DIR",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="The averaged checkpoint to write.")
    ] = None,
    num_epoch_checkpoints: Annotated[
        int | None,
        typer.Option(help="With a DIR: average its last N checkpoint{epoch}.pt, by epoch."),
    ] = None,
    num_update_checkpoints: Annotated[
        int | None,
        typer.Option(
            help="With a DIR: average its last N checkpoint_{epoch}_{updates}.pt, by updates."
        ),
    ] = None,
    user_dir: UserDirOption = None,
) -> None:
    """Average the weights of checkpoints (float64 mean, written in each tensor's dtype) into a
    checkpoint that generate, score, sample, rnnkit.load and train --finetune-from-model read."""
    setup_plugins(user_dir)
    names = [*(inputs or []), *ctx.args]
    if not names:
        raise RnnkitError("--inputs is required: checkpoints, or a save dir with a count")
    if output is None:
        raise RnnkitError("--output is required: the averaged checkpoint to write")
    from rnnkit.training.average import average_checkpoints, last_checkpoints
    from rnnkit.training.checkpoint import save_checkpoint

    counted = num_epoch_checkpoints is not None or num_update_checkpoints is not None
    if counted:
        if len(names) != 1:
            raise RnnkitError(
                "--num-epoch-checkpoints/--num-update-checkpoints take one save dir as --inputs, "
                f"not {len(names)} paths"
            )
        paths = last_checkpoints(
            names[0], epochs=num_epoch_checkpoints, updates=num_update_checkpoints
        )
    else:
        if len(names) == 1 and Path(names[0]).is_dir():
            raise RnnkitError(
                f"--inputs {names[0]} is a directory: add --num-epoch-checkpoints N or "
                "--num-update-checkpoints N"
            )
        paths = [Path(n) for n in names]
    state = average_checkpoints(paths)
    save_checkpoint(state, output)
    get_reporter().info(
        f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) into {output}"
    )
