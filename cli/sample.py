"""``rnnkit sample``: generate text from a language model (or an ensemble), streaming tokens to
stdout; several samples are separated by a line (blank by default, ``--sample-separator``)."""

from __future__ import annotations

import enum
import math
import sys
from typing import Annotated

import typer

from rnnkit.errors import RnnkitError
from rnnkit_cli.common import ThreadsOption, UserDirOption, set_threads, setup_plugins
from rnnkit_cli.paths import PathsOption, checkpoint_paths

app = typer.Typer()
GEN = "Generation"
ESCAPES = {"\\n": "\n", "\\t": "\t", "\\\\": "\\"}  # what --sample-separator reads as escapes


class Quantize(str, enum.Enum):
    none = "none"
    int8 = "int8"


@app.command("sample")
def sample(
    path: PathsOption = None,
    prime: Annotated[
        str, typer.Option(help="Text to continue; the state is warmed on it.", rich_help_panel=GEN)
    ] = "",
    length: Annotated[
        int, typer.Option(help="Tokens to generate per sample.", rich_help_panel=GEN)
    ] = 200,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature (0: greedy).", rich_help_panel=GEN)
    ] = 1.0,
    top_k: Annotated[
        int, typer.Option(help="Sample among the k most likely (0: all).", rich_help_panel=GEN)
    ] = 0,
    top_p: Annotated[
        float, typer.Option(help="Nucleus sampling mass (1: off).", rich_help_panel=GEN)
    ] = 1.0,
    num_samples: Annotated[int, typer.Option(help="How many samples.", rich_help_panel=GEN)] = 1,
    sample_separator: Annotated[
        str,
        typer.Option(
            help="Line printed between samples (not after the last); \\n and \\t in it are "
            "read as a newline and a tab. Default: an empty line.",
            rich_help_panel=GEN,
        ),
    ] = "",
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed (same seed and options → same text).", rich_help_panel=GEN),
    ] = None,
    stop: Annotated[
        str | None, typer.Option(help="Stop a sample once this text appears.", rich_help_panel=GEN)
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    quantize: Annotated[
        Quantize, typer.Option(help="int8: dynamic int8 linear and recurrent layers (CPU).")
    ] = Quantize.none,
    threads: ThreadsOption = 0,
    user_dir: UserDirOption = None,
) -> None:
    """Sample text from a char- or word-level LM; output streams to stdout as it is produced.

    Example:
    `rnnkit sample --path runs/shakespeare/checkpoint_best.pt --prime "ROMEO:" --length 300`
    """
    check_options(length, temperature, top_k, top_p, num_samples)  # before the model loads
    paths = checkpoint_paths(path)
    from rnnkit.hub import load  # torch: only once there is something to sample

    setup_plugins(user_dir)
    set_threads(threads)
    model = load(paths, device, quantize=quantize.value)
    out = sys.stdout
    separator = unescape(sample_separator) + "\n"
    for i in range(num_samples):
        if i:
            out.write(separator)
        out.write(prime)
        ended_with_newline = prime.endswith("\n")
        sample_seed = None if seed is None else seed + i
        for piece in model.sample_stream(
            prime,
            length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=sample_seed,
            stop=stop,
        ):
            out.write(piece)
            out.flush()
            ended_with_newline = piece.endswith("\n")
        if not ended_with_newline:
            out.write("\n")
        out.flush()


def unescape(text: str) -> str:
    """``text`` with the escapes ``\\n``, ``\\t`` and ``\\\\`` read (nothing else changes)."""
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in ESCAPES:
            out.append(ESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def check_options(length: int, temperature: float, top_k: int, top_p: float, samples: int) -> None:
    """Refuse values sampling cannot use, with one line naming each (not a traceback from
    deep in sampling, or silently empty output)."""
    rules = [
        (length >= 0, f"--length must be >= 0 (got {length})"),
        (math.isfinite(temperature) and temperature >= 0,
         f"--temperature must be a finite number >= 0, 0 for greedy (got {temperature})"),
        (top_k >= 0, f"--top-k must be >= 0, 0 for all (got {top_k})"),
        (math.isfinite(top_p) and 0 < top_p <= 1, f"--top-p must be in (0, 1] (got {top_p})"),
        (samples >= 1, f"--num-samples must be at least 1 (got {samples})"),
    ]  # fmt: skip
    problems = [message for ok, message in rules if not ok]
    if problems:
        raise RnnkitError("; ".join(problems))
