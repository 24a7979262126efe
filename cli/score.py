"""``rnnkit score``: perplexity of a language model on binarized data or on raw lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.errors import RnnkitError
from rnnkit.hub import load
from rnnkit.io import read_lines
from rnnkit.tasks import load_task
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()


def _stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    lines = data.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


@app.command("score")
def score(
    data: Annotated[
        Path | None, typer.Argument(help="Binarized data directory to evaluate on.")
    ] = None,
    path: Annotated[Path | None, typer.Option("--path", help="Model checkpoint.")] = None,
    subset: Annotated[
        str, typer.Option(help="Split of DATA to evaluate: valid, test, ...")
    ] = "valid",
    input: Annotated[
        str | None,
        typer.Option("--input", help="Raw text file (or - for stdin): one JSON result per line."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Streams for perplexity (default: the training batch size).")
    ] = None,
    bptt: Annotated[
        int | None, typer.Option(help="Window length (default: the training bptt).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the data-set result as JSON.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    user_dir: UserDirOption = None,
) -> None:
    """Perplexity (and bits per character) of a language model.

    Examples: `rnnkit score data-bin/ptb --path runs/ptb/checkpoint_best.pt --subset valid` ·
    `printf 'the apple and pear salad\\n' | rnnkit score --path runs/ptb/checkpoint_best.pt
    --input -`
    """
    setup_plugins(user_dir)
    if path is None:
        raise RnnkitError("--path CHECKPOINT is required")
    model = load(path, device)
    if input is not None:
        lines = (
            _stdin_lines() if input == "-" else [t for _, t in read_lines(input, errors="replace")]
        )
        for result in model.score(lines):
            print(json.dumps(result), flush=True)
        return
    if data is None:
        raise RnnkitError("give a DATA directory (with --subset) or --input FILE|-")
    model.require("lm", method="score")
    task = load_task(data, expect=model.task_name)
    if task.dictionary != model.task.dictionary:
        raise RnnkitError(f"{data}: its dictionary differs from the one the model was trained with")
    train_cfg = model.train_config
    m = task.evaluate(
        model.model,
        subset,
        batch_size or train_cfg["batch_size"],
        bptt or train_cfg["bptt"],
        model.device,
    )
    if as_json:
        print(json.dumps({"subset": subset, **m}))
    else:
        print(
            f"{subset}: loss {m['loss']:.4f} nats/token | ppl {m['ppl']:.2f} | "
            f"bpc {m['bpc']:.4f} | tokens {m['tokens']}"
        )
