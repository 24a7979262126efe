"""Entry point of the ``rnnkit`` command: combines the subcommands and turns errors into exits.

A :class:`~rnnkit.errors.RnnkitError` becomes one line on stderr and exit code 2, and so does a
stdout that cannot take the results (a full disk, ``ulimit -f``: ``SIGXFSZ`` is ignored so that
the write fails instead of killing the process); a closed stdout (``| head``) exits quietly;
Ctrl-C exits 130.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

import typer

from rnnkit.errors import RnnkitError
from rnnkit.io import write_reason
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
