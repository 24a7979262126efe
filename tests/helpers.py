"""The one way the tests run a command in a subprocess (the installed ``rnnkit`` as a user runs
it, or another tool to compare with), so timeouts, text handling and failure messages are alike.

Each subprocess pays Python's and torch's start-up (seconds on a loaded machine), so a check that
needs only one command's exit code and output runs the command line in-process instead, through
its real entry point: :func:`run_main` returns the same record as :func:`run_rnnkit`.
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import warnings
from pathlib import Path
from typing import IO, Any


def run_rnnkit(
    program: str | Path,
    *args: str,
    stdin: str | bytes | None = None,
    check: bool = True,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | IO[Any] = subprocess.PIPE,
    limit: int | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run ``program ARGS`` (usually the ``rnnkit_bin`` fixture) and return the finished process.

    Output is text unless ``stdin`` is bytes. ``check``: a non-zero exit fails the test with the
    command's stderr. ``limit``: a file-size limit (``ulimit -f``) in bytes.
    """

    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [str(program), *args],
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=not isinstance(stdin, bytes),
        cwd=cwd,
        env=env,
        timeout=timeout,
        preexec_fn=set_limit if limit else None,
    )
    if check and proc.returncode != 0:
        name = Path(program).name
        raise AssertionError(f"{name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


# What Python's default filters hide outside __main__ (the rnnkit script shows the rest once).
HIDDEN_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _stream(data: bytes = b"") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline=None)


def _read(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", errors="replace")  # type: ignore[attr-defined]


def _show_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_main(*args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess:
    """Run ``rnnkit ARGS`` in this process through ``rnnkit_cli.main.main`` (which turns errors
    into one line and an exit code) and return what a subprocess would have: exit code, stdout
    and stderr, Python's warnings included (with its default filters), as they would be there.
    ``check`` as for :func:`run_rnnkit`."""
    from rnnkit_cli.main import main

    out, err = _stream(), _stream()
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr
    sys.argv, sys.stdin = ["rnnkit", *args], _stream(stdin.encode())
    sys.stdout, sys.stderr = out, err
    code: int | str | None = 0
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            warnings.simplefilter("always")
            for hidden in HIDDEN_BY_DEFAULT:
                warnings.filterwarnings("ignore", category=hidden)
            warnings.showwarning = _show_on_stderr
            main()
    except SystemExit as e:
        code = e.code
        if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
            err.write(code + "\n")
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved
    returncode = code if isinstance(code, int) else 0 if code is None else 1
    proc = subprocess.CompletedProcess(["rnnkit", *args], returncode, _read(out), _read(err))
    if check and returncode != 0:
        raise AssertionError(f"rnnkit {' '.join(args)} failed ({returncode}):\n{proc.stderr}")
    return proc
