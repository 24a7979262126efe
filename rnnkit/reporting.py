"""The small interface through which the library talks to the user.

Library code reports progress, tables and warnings through a :class:`Reporter`; it never prints
to stdout (that is for results) and never imports a UI toolkit. The default writes plain lines to
stderr; the command line installs a rich implementation (``rnnkit_cli.reporting``).

The reporter in use is a value: :func:`using_reporter` installs one for a ``with`` block and puts
the previous one back, so a library call (a training run on a worker that must stay quiet, a
test) never leaves the process's reporter changed. :func:`set_reporter` is for the command line's
entry point, which owns the process.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any


class Progress:
    """Handle returned by :meth:`Reporter.progress`; ``update`` advances it and shows metrics."""

    def __init__(self, reporter: Reporter, description: str, total: int | None) -> None:
        self.reporter, self.description, self.total = reporter, description, total
        self.done = 0
        self._last = 0.0

    def update(self, advance: int = 1, **metrics: Any) -> None:
        self.done += advance
        now = time.monotonic()
        if now - self._last >= self.reporter.log_interval_s or self.done == self.total:
            self._last = now
            shown = " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
            total = f"/{self.total}" if self.total else ""
            self.reporter.info(f"{self.description} {self.done}{total} {shown}".rstrip())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


class Reporter:
    """Plain stderr reporter: one line per message, progress at most every ``log_interval_s``."""

    def __init__(self, log_interval_s: float = 10.0, quiet: bool = False) -> None:
        self.log_interval_s = log_interval_s
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warning(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.quiet:
            return
        cells = [list(map(str, columns))] + [[_fmt(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
        rendered = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
        lines = [title, *rendered]
        print("\n".join(lines), file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[Progress]:
        yield Progress(self, description, total)

    def quieted(self) -> Reporter:
        """A copy of this reporter that shows warnings only (no info, tables or progress)."""
        other = copy.copy(self)
        other.quiet = True
        return other


_current = Reporter()


def get_reporter() -> Reporter:
    """The reporter in use (plain stderr unless the CLI installed another)."""
    return _current


def set_reporter(reporter: Reporter) -> None:
    """Install ``reporter`` for the rest of the process (the command line's entry point does;
    library code uses :func:`using_reporter`)."""
    global _current
    _current = reporter


@contextlib.contextmanager
def using_reporter(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the ``with`` block; the previous one is back afterwards, also
    when the block raises."""
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous
