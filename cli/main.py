"""Entry point of the ``rnnkit`` command: combines the subcommands and turns errors into exits.

Subcommands load lazily: :data:`COMMANDS` names each one's module and one-line help, so ``rnnkit
--help`` lists them without importing any, and ``rnnkit CMD`` imports only CMD's module (torch
comes with the commands that need a model, never with ``--help``, ``--version``, ``models`` or
``score --sys``). A module that is not installed is left out of the list.

A :class:`~rnnkit.errors.RnnkitError` becomes one line on stderr and exit code 2, and so does a
stdout that cannot take the results (a full disk, ``ulimit -f``: ``SIGXFSZ`` is ignored so that
the write fails instead of killing the process); a closed stdout (``| head``) exits quietly;
Ctrl-C exits 130.
"""

from __future__ import annotations

import difflib
import errno
import importlib
import importlib.util
import os
import signal
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from rnnkit import __version__
from rnnkit.errors import RnnkitError
from rnnkit.io import write_reason
from rnnkit.reporting import set_reporter
from rnnkit_cli.helpformat import rendered_as_written
from rnnkit_cli.reporting import RichReporter, console

MARKUP = "markdown"

#: Subcommand -> (its module, the first paragraph of its help, as ``rnnkit --help`` lists it).
#: tests/cli/test_cli_startup.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "preprocess": (
        "rnnkit_cli.preprocess",
        "Tokenize raw text, build dictionaries and write memory-mapped .bin/.idx datasets.",
    ),
    "train": (
        "rnnkit_cli.train",
        "Train a model on binarized data; resumes from `SAVE_DIR/checkpoint_last.pt` if present.",
    ),
    "generate": (
        "rnnkit_cli.generate",
        "Translate, tag or classify a binarized split or raw lines (one output line per line).",
    ),
    "sample": (
        "rnnkit_cli.sample",
        "Sample text from a char- or word-level LM; output streams to stdout as it is produced.",
    ),
    "score": (
        "rnnkit_cli.score",
        "Perplexity of a language model, span F1 and accuracies of a tagger or classifier, BLEU/ "
        "chrF/TER of a system output (as sacrebleu), or span F1 and accuracy of predicted tags.",
    ),
    "models": (
        "rnnkit_cli.models",
        "List every registry (architectures and presets, models, tasks, cells, attention scores, "
        "criteria, optimizers, LR schedulers, tokenizers), or the config fields of one "
        "architecture.",
    ),
    "average": (
        "rnnkit_cli.average",
        "Average the weights of checkpoints (float64 mean, written in each tensor's dtype) into a "
        "checkpoint that generate, score, sample, rnnkit.load and train --finetune-from-model "
        "read.",
    ),
    "plot": (
        "rnnkit_cli.plot",
        "Plot training curves: a row per metric, by update and by wall time, training (solid) and "
        "validation (dashed) curves of every run overlaid.",
    ),
    "quantize": (
        "rnnkit_cli.quantize",
        "Write CHECKPOINT with int8 linear and LSTM/GRU weights (per-row scales) for CPU "
        "inference: a smaller file that generate, score, sample and rnnkit.load run in int8, "
        "with the outputs of `--quantize int8` on CHECKPOINT.",
    ),
}
LISTING = "rnnkit.listing"  # ctx.meta key: set while the command list is rendered


def installed(name: str) -> bool:
    """Whether subcommand ``name``'s module exists (found without importing it)."""
    return importlib.util.find_spec(COMMANDS[name][0]) is not None


def load_command(name: str) -> Any:
    """Import subcommand ``name``'s module and build its click command from the module's typer
    app; its ``--help`` renders as :func:`rendered_as_written` says."""
    module = importlib.import_module(COMMANDS[name][0])
    command = typer.main.get_command(module.app)
    command.rich_markup_mode = MARKUP
    render = command.format_help

    def format_help(ctx: Any, formatter: Any) -> None:
        with rendered_as_written(command, ctx):
            render(ctx, formatter)

    command.format_help = format_help
    return command


class LazyGroup(TyperGroup):
    """The top-level group: lists :data:`COMMANDS` from the table, imports only the one run."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [name for name in COMMANDS if installed(name)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS or not installed(cmd_name):
            return None
        if ctx.meta.get(LISTING):  # the list needs a name and a line, not the module
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1], rich_markup_mode=MARKUP)
        return load_command(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        ctx.meta[LISTING] = True
        try:
            with rendered_as_written(self, ctx):
                super().format_help(ctx, formatter)
        finally:
            del ctx.meta[LISTING]

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        ctx.meta[LISTING] = True  # completing a command name: names and lines, no imports
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            del ctx.meta[LISTING]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except Exception as e:  # click's UsageError: typer's "did you mean" reads self.commands
            close = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if hasattr(e, "message") and close:
                e.message = f"{e.message.rstrip('.')}. Did you mean {close[0]!r}?"
            raise


app = typer.Typer(
    name="rnnkit",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP,
)


def show_version(value: bool) -> None:
    """``--version``: print ``rnnkit VERSION`` and exit."""
    if value:
        print(f"rnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def top_level(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train, decode and score recurrent sequence models (RNN, LSTM, GRU) from the shell."""


def optional_values(argv: list[str]) -> list[str]:
    """``--replace-unk`` may stand alone (fairseq's optional value): give it an empty one."""
    out = []
    for i, arg in enumerate(argv):
        after = argv[i + 1] if i + 1 < len(argv) else None
        alone = after is None or (after.startswith("-") and after != "-")
        out.append("--replace-unk=" if arg == "--replace-unk" and alone else arg)
    return out


STDOUT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def run_app(argv: list[str]) -> None:
    """Run the subcommand, then flush stdout: a full disk shows here, not at interpreter exit."""
    try:
        app(args=optional_values(argv), prog_name="rnnkit")
    except SystemExit:
        sys.stdout.flush()
        raise


def drop_stdout() -> None:
    """Point stdout at /dev/null, so Python does not complain at shutdown about the output it
    could not flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    """Run the command line; never returns."""
    set_reporter(RichReporter())
    if hasattr(signal, "SIGXFSZ"):  # over `ulimit -f`: let the write fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        run_app(sys.argv[1:])
    except RnnkitError as e:
        console.print(f"rnnkit: error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        drop_stdout()  # the reader went away (`| head`): exit quietly
        sys.exit(0)
    except OSError as e:
        # Files rnnkit writes report their own errors (rnnkit.io.writing), so a full disk
        # that names no file is stdout's.
        if e.filename is not None or e.errno not in STDOUT_ERRNOS:
            raise
        drop_stdout()
        console.print(f"rnnkit: error: <stdout>: {write_reason(e)}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("rnnkit: interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
