"""``rnnkit plot``: training curves of one or more save dirs (their ``train_log.jsonl``) in one
image, by update and by wall time, training and validation overlaid.

The work is :mod:`rnnkit.training.curves`; matplotlib (the ``plot`` extra) and torch are not
imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.reporting import get_reporter

app = typer.Typer()


@app.command("plot")
def plot(
    save_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Save dirs of rnnkit train (each has a train_log.jsonl); each is a run in the "
            "legend, named after its folder.",
            metavar="SAVE_DIR",
        ),
    ],
    metric: Annotated[
        str,
        typer.Option(
            help="Comma-separated metrics, a row of panels each: loss, ppl, and whatever "
            "validation logs (bleu, f1, acc, ...). A metric a run did not log is skipped with "
            "a warning.",
        ),
    ] = "loss,ppl",
    output: Annotated[
        Path,
        typer.Option(help="Image to write; its suffix gives the format (png, pdf, svg)."),
    ] = Path("curves.png"),
) -> None:
    """Plot training curves: a row per metric, by update and by wall time, training (solid)
    and validation (dashed) curves of every run overlaid."""
    from rnnkit.training.curves import collect, draw_curves

    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    series = collect(save_dirs, metrics)
    written = draw_curves(series, metrics, output)
    runs = f"{len(save_dirs)} run" + ("s" if len(save_dirs) != 1 else "")
    get_reporter().info(f"wrote {written} ({len(series)} curves of {runs})")
