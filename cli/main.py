"""Entry point of the ``rnnkit`` command: combines the subcommands and turns errors into exits.

A :class:`~rnnkit.errors.RnnkitError` becomes one line on stderr and exit code 2; a closed stdout
(``| head``) exits quietly; Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import sys

import typer

from rnnkit.errors import RnnkitError
from rnnkit.reporting import set_reporter
from rnnkit_cli import generate, models, preprocess, sample, score, train
from rnnkit_cli.reporting import RichReporter, console

app = typer.Typer(
    name="rnnkit",
    help="Train, decode and score recurrent sequence models (RNN, LSTM, GRU) from the shell.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
for module in (preprocess, train, generate, sample, score, models):
    app.add_typer(module.app)


def optional_values(argv: list[str]) -> list[str]:
    """``--replace-unk`` may stand alone (fairseq's optional value): give it an empty one."""
    out = []
    for i, arg in enumerate(argv):
        after = argv[i + 1] if i + 1 < len(argv) else None
        alone = after is None or (after.startswith("-") and after != "-")
        out.append("--replace-unk=" if arg == "--replace-unk" and alone else arg)
    return out


def main() -> None:
    """Run the command line; never returns."""
    set_reporter(RichReporter())
    try:
        app(args=optional_values(sys.argv[1:]), prog_name="rnnkit")
    except RnnkitError as e:
        console.print(f"rnnkit: error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        # The reader went away (`| head`): exit quietly, and keep Python from complaining
        # about the unflushable stdout at shutdown.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        console.print("rnnkit: interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
