"""``rnnkit quantize``: write an int8 copy of a checkpoint for CPU inference.

The int8 checkpoint holds the linear layers' and the LSTM/GRU stacks' weights as int8 with one
scale per output row (about 4x smaller for those layers), the rest as in the source, and no
optimizer or resume state; it loads with ``torch.load(weights_only=True)``, and generate, score,
sample and ``rnnkit.load`` run it in int8, with the outputs of ``--quantize int8`` on the source.
The work is :mod:`rnnkit.quantization`; this module only parses the options. No torch at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit_cli.common import UserDirOption, setup_plugins

app = typer.Typer()


@app.command("quantize")
def quantize(
    checkpoint: Annotated[Path, typer.Argument(help="The fp32 checkpoint to quantize.")],
    output: Annotated[
        Path | None, typer.Option("--output", help="The int8 checkpoint to write.")
    ] = None,
    user_dir: UserDirOption = None,
) -> None:
    """Write CHECKPOINT with int8 linear and LSTM/GRU weights (per-row scales) for CPU
    inference: a smaller file that generate, score, sample and rnnkit.load run in int8, with
    the outputs of `--quantize int8` on CHECKPOINT.

    Example: `rnnkit quantize runs/mt/checkpoint_best.pt --output runs/mt/int8.pt`, then
    `rnnkit generate --path runs/mt/int8.pt --input test.de`.
    """
    setup_plugins(user_dir)
    if output is None:
        raise RnnkitError("--output is required: the int8 checkpoint to write")
    if output.resolve() == checkpoint.resolve():
        raise RnnkitError(f"--output {output} is the input checkpoint; name another file")
    from rnnkit.quantization import quantize_checkpoint
    from rnnkit.tasks import task_from_checkpoint
    from rnnkit.training.checkpoint import load_checkpoint, rebuilding, save_checkpoint

    state = load_checkpoint(checkpoint)
    if state.get("quantization") == "int8":
        raise RnnkitError(f"{checkpoint}: already an int8 checkpoint")
    with rebuilding(checkpoint):
        model = task_from_checkpoint(state).model_from_checkpoint(state)
    quantized = quantize_checkpoint(state, model)
    save_checkpoint({k: v for k, v in quantized.items() if k not in ("format", "version")}, output)
    before, after = checkpoint.stat().st_size, output.stat().st_size
    get_reporter().info(
        f"wrote {output}: {len(quantized['quantized_state'])} weight tensors in int8, "
        f"{after / 1e6:.2f} MB (from {before / 1e6:.2f} MB)"
    )
