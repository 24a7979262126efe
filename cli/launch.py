"""``rnnkit train --nproc-per-node N [--max-restarts R]``: start the workers, restart them, and
report a failure once.

The launching process checks everything it can first (:func:`rnnkit.training.preflight.
check_launch`, called by ``rnnkit train``), then runs torch's launcher (what ``torchrun
--standalone`` runs) in-process, so the job's outcome is ours to report, never torchrun's
``ChildFailedError`` traceback and per-worker summary. A worker's rnnkit error is handed to the
launcher through torch's per-worker error file instead of being printed: a mistake only the
workers can see (exit code 2) is printed once and the launcher exits 2; lost-worker errors
(exit code 1, saying which checkpoint is intact) are joined on one line after the name of the
signal that killed a worker, if one was. A traceback is printed by its worker, and the launcher
exits with that worker's code. torch's launcher logs stay quiet unless ``LOGLEVEL`` is set.

With ``--max-restarts R`` torch's elastic agent stops and restarts every worker when one fails,
up to R times; the restarted workers run the same command, so they resume from
``checkpoint_last.pt`` by themselves. Each restart is logged on one line; once the restarts are
exhausted the last failure is reported as above, saying so.

Under a plain ``torchrun``, :func:`report_once` still keeps a mistake every worker finds alike
(options and data, checked before the workers join or by the preflight) to one line per
machine, from local rank 0.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter
from rnnkit.training import distributed
from rnnkit.training.preflight import PreflightError

NPROC = "--nproc-per-node"
MAX_RESTARTS = "--max-restarts"
LAUNCHED = "RNNKIT_LAUNCHED"  # set for the workers of launch_workers
_AGENT_LOGGER = "torch.distributed.elastic.agent.server.api"  # logs "will restart worker group"
# By default the workers share the c10d rendezvous' store, which outlives a restart: the new
# workers then read the old ones' addresses and cannot connect (pytorch/pytorch#135712).
# Unshared, rank 0 of every attempt hosts a new store on a new port.
RESTART_STORE = ("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")


def without_nproc(argv: list[str], names: tuple[str, ...] = (NPROC, MAX_RESTARTS)) -> list[str]:
    """``argv`` without the launcher's options (``--nproc-per-node N`` / ``--nproc-per-node=N``
    and ``--max-restarts``), which the workers must not see."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not a.startswith(tuple(n + "=" for n in names)):
            out.append(a)
    return out


class _RestartLine(logging.Filter):
    """Drops the elastic agent's records, but says once per restart that the workers restart."""

    def __init__(self, nproc: int) -> None:
        super().__init__()
        self.nproc = nproc

    def filter(self, record: logging.LogRecord) -> bool:
        if "will restart worker group" in str(record.msg) and len(record.args or ()) == 4:
            _, _, left, most = record.args  # type: ignore[misc]
            get_reporter().warning(
                f"a worker failed; restarting all {self.nproc} workers (restart "
                f"{int(most) - int(left) + 1} of {MAX_RESTARTS} {most}): they resume from "
                "checkpoint_last.pt, redoing the updates since it was written"
            )
        return False


@contextlib.contextmanager
def _quiet_launcher_logs(nproc: int) -> Iterator[None]:
    """Silence torch's launcher logs (a worker's failure is reported by us, once); a user who
    sets ``LOGLEVEL`` gets them as torchrun shows them."""
    if "LOGLEVEL" in os.environ:
        yield
        return
    names = [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    agent, restarts = logging.getLogger(_AGENT_LOGGER), _RestartLine(nproc)
    agent.setLevel(logging.INFO)  # its records reach the filter, which prints none of them
    agent.addFilter(restarts)
    try:
        yield
    finally:
        agent.removeFilter(restarts)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class WorkerFailed(RnnkitError):
    """Workers that were killed or lost the others: what they said, on one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _outcome(failed: Any, nproc: int, max_restarts: int = 0) -> BaseException:
    """What the launcher raises when torch's launcher raised ``ChildFailedError`` ``failed``
    (the failure of the last attempt, after ``max_restarts`` restarts).

    An rnnkit error a worker handed over is the cause (the others' lost-worker errors follow
    from it): the first one is the outcome. Otherwise the workers killed by a signal (other than
    the launcher's own SIGTERM) are named, then the errors of the workers that lost them (which
    checkpoint is intact), with the exit code of a worker that printed its own failure.
    """
    handed = sorted(
        (f.error_file_data["rnnkit_time"], rank, f.error_file_data["rnnkit_code"], f.message)
        for rank, f in failed.failures.items()
        if "rnnkit_time" in f.error_file_data
    )
    for _, _, code, message in handed:
        if code == 2:
            return RnnkitError(message)
    own = {r: f for r, f in failed.failures.items() if "rnnkit_time" not in f.error_file_data}
    lines = [
        f"worker {rank} of {nproc} (pid {f.pid}) was killed by {f.signal_name()}"
        for rank, f in sorted(own.items())
        if f.exitcode < 0 and f.signal_name() != "SIGTERM"
    ] + [message for *_, message in handed]
    code = next((f.exitcode for f in own.values() if f.exitcode > 0), 1)
    if lines and max_restarts > 0:
        lines[0] = f"failed again after {MAX_RESTARTS} {max_restarts}: {lines[0]}"
    return WorkerFailed("; ".join(lines), code) if lines else SystemExit(code)


def launch_workers(nproc: int, argv: list[str], max_restarts: int = 0) -> NoReturn:
    """Run this command in ``nproc`` workers through torch's launcher (``torchrun
    --standalone``, one machine), which stops them all if one fails and restarts them up to
    ``max_restarts`` times; exit as the job did."""
    if "LOCAL_RANK" in os.environ:
        given = NPROC if nproc > 1 else MAX_RESTARTS
        raise RnnkitError(f"{given}: this is already a torchrun worker; give it to torchrun")
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # Share the cores out (torchrun would give each worker 1 thread); --threads overrides.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    os.environ[LAUNCHED] = "1"
    if max_restarts > 0:  # each attempt's workers need a store of their own (RESTART_STORE)
        os.environ.setdefault(*RESTART_STORE)
    args = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}",
                                f"--max-restarts={max_restarts}", "-m", "rnnkit_cli",
                                *without_nproc(argv)])  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    with _quiet_launcher_logs(nproc):
        try:
            torchrun.run(args)
        except ChildFailedError as e:
            raise _outcome(e, nproc, max_restarts) from None
        except SignalException as e:  # Ctrl-C or a kill: the workers saved and said so
            raise SystemExit(128 + int(e.sigval)) from None
    raise SystemExit(0)


def _hand_to_launcher(e: RnnkitError) -> bool:
    """In a worker of :func:`launch_workers`, write an rnnkit error (a mistake, or a lost
    worker) to torch's error file for the launcher to report once; False where there is no
    such launcher or file."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if e.exit_code not in (1, 2) or not path or LAUNCHED not in os.environ:
        return False  # an interrupted worker (130, 143) says so itself
    now = time.time()
    record = {"message": str(e), "timestamp": int(now), "rnnkit_time": now,
              "rnnkit_code": e.exit_code}  # fmt: skip
    try:
        Path(path).write_text(json.dumps(record), encoding="utf-8")
    except OSError:
        return False
    return True


def _said_by_another_worker(e: RnnkitError) -> bool:
    """Whether local rank 0 of this torchrun worker's machine reports ``e`` as well."""
    if os.environ.get("LOCAL_RANK", "0") == "0" or e.exit_code != 2:
        return False  # an interrupted or lost worker says so itself
    # Before the workers join, or in the preflight, every worker checks the same options
    # against the same files; after, an error may be this worker's own.
    return distributed.world_size() == 1 or isinstance(e, PreflightError)


def report_once(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` whose rnnkit errors, in a torchrun worker, are reported once for the job:
    handed to :func:`launch_workers`, or left to local rank 0 where every worker finds the
    same; the worker then exits with the error's code without printing it."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RnnkitError as e:
            if "LOCAL_RANK" in os.environ and (_hand_to_launcher(e) or _said_by_another_worker(e)):
                raise SystemExit(e.exit_code) from None
            raise

    return run
