"""One training run per save directory: an exclusive lock on ``SAVE_DIR/.lock``.

:class:`SaveDirLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file and holds it for
the whole run. The kernel drops a ``flock`` when its file is closed, also when the process dies
(``kill -9``, a crash, a lost machine), so a lock is never stale and there is nothing to clean
up by hand. The holder writes its PID, host and start time into the file, so a second run is
refused at once with one line that names them. The lock file is written in place, not by
temp + rename: the lock belongs to the file's inode, which must stay the same for every run,
and the file is never removed for the same reason (a run that opened the old inode would hold
a lock nobody else sees).

Once the lock is held nothing else writes in the folder, so the ``.NAME.XXXX.tmp`` files that
an interrupted :func:`rnnkit.io.atomic_write` left behind (a kill during a checkpoint write)
are removed. Under torchrun only rank 0 takes the lock (:func:`rnnkit.training.run.build_run`).
Where ``fcntl`` is missing (Windows) the run goes on unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_SHOWN = 3  # leftover file names listed in the log line


class SaveDirLock:
    """The exclusive right to write in ``save_dir``; :meth:`acquire` it, :meth:`release` it (or
    use it as a context manager). Releasing twice, or a lock never taken, is harmless."""

    _fd: int | None = None  # the open lock file while held

    def __init__(self, save_dir: str | os.PathLike) -> None:
        self.save_dir = Path(save_dir)
        self.path = self.save_dir / LOCK_NAME

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> SaveDirLock:
        """Create ``save_dir`` if needed and lock it, or raise a one-line :class:`RnnkitError`
        naming the PID and host of the run that holds it. Then remove leftover temp files."""
        _make_dir(self.save_dir)
        if fcntl is None:
            get_reporter().warning(
                f"{self.save_dir}: this platform cannot lock the save dir (no fcntl); make sure "
                "no other run writes there"
            )
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._busy(holder) from None
            get_reporter().warning(f"{self.path}: cannot lock ({e.strerror}); running unlocked")
            return self
        self._fd = fd
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
        remove_leftovers(self.save_dir)
        return self

    def check_free(self) -> None:
        """Raise the error :meth:`acquire` would if another run holds the lock now; creates
        nothing (a launcher's early check: the workers take the lock itself)."""
        if fcntl is None or not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._busy(_read_holder(fd)) from None
        finally:
            os.close(fd)

    def _busy(self, holder: str) -> RnnkitError:
        return RnnkitError(
            f"{self.save_dir}: in use by another training run ({holder}); wait for it to "
            "finish, or use another --save-dir"
        )

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):  # while held: no reader sees a finished run's PID
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> SaveDirLock:
        return self.acquire()

    def __exit__(
        self, tp: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a Run dropped without fit(): its lock goes with it
        self.release()


def _make_dir(save_dir: Path) -> None:
    if save_dir.exists() and not save_dir.is_dir():
        raise RnnkitError(f"--save-dir {save_dir}: exists and is not a directory")
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RnnkitError(f"--save-dir {save_dir}: cannot create it ({e.strerror})") from None


def _read_holder(fd: int) -> str:
    """What the holder wrote (``pid N on HOST since ...``), or a placeholder if it has not yet."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid and host not yet written"


def remove_leftovers(save_dir: Path) -> list[str]:
    """Remove the ``.*.tmp`` files of interrupted atomic writes in ``save_dir`` (call only with
    the lock held); logs one line and returns the names removed."""
    removed = []
    for p in sorted(save_dir.glob(".*.tmp")):
        if p.is_file():
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p.name)
    if removed:
        shown = ", ".join(removed[:_SHOWN]) + (", ..." if len(removed) > _SHOWN else "")
        get_reporter().info(
            f"{save_dir}: removed {len(removed)} leftover temporary file(s) of interrupted "
            f"writes: {shown}"
        )
    return removed
