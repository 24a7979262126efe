"""The small interface through which the library talks to the user.

Library code reports progress, tables, warnings and records (a training update, a validation)
through a :class:`Reporter`; it never prints to stdout (that is for results) and never imports
a UI toolkit. The default writes plain lines to stderr; the command line installs a rich
implementation (``rnnkit_cli.reporting``).

Every message becomes one log line in the reporter's ``log_format``: ``simple`` text, or
``json``, one object per line (``{"event": "info", "message": ...}``; a record is its fields,
e.g. ``{"event": "train", "epoch": 1, "updates": 100, "loss": ...}``). With a ``log_file`` each
line is also appended there (:meth:`Reporter.logging_to`).

The reporter in use is a value: :func:`using_reporter` installs one for a ``with`` block and puts
the previous one back, so a library call (a training run on a worker that must stay quiet, a
test) never leaves the process's reporter changed. :func:`set_reporter` is for the command line's
entry point, which owns the process.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TextIO

LogFormat = Literal["simple", "json"]


class Progress:
    """Handle returned by :meth:`Reporter.progress`; ``update`` advances it and shows metrics.

    Without a bar, a line at most every ``log_interval_s`` (none with ``lines=False``: the
    caller logs records of its own, as training does every ``--log-interval`` updates)."""

    def __init__(
        self, reporter: Reporter, description: str, total: int | None, lines: bool = True
    ) -> None:
        self.reporter, self.description, self.total = reporter, description, total
        self.lines = lines
        self.done = 0
        self._last = 0.0

    def update(self, advance: int = 1, **metrics: Any) -> None:
        self.done += advance
        now = time.monotonic()
        if not self.lines:
            return
        if now - self._last >= self.reporter.log_interval_s or self.done == self.total:
            self._last = now
            self.reporter.progress_line(self.description, self.done, self.total, metrics)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def format_value(value: Any) -> str:
    """A record's number as a log line shows it (loss 2.3026, ppl 61.74, lr 0.0003)."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"


def format_seconds(seconds: float) -> str:
    """``4.2s``, ``42s``, ``2m03s``, ``1h02m03s``."""
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def plain_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table as aligned text lines under its title."""
    cells = [list(map(str, columns))] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    rendered = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([title, *rendered])


_PLACE = ("epoch", "updates")  # where in training; shown first
_HIDDEN = {"split", "best", "tokens"}  # in the line's label or marker, or too noisy to show


def render_record(event: str, fields: dict[str, Any]) -> str:
    """A record as a simple log line: ``epoch 2 | update 40 | valid loss 2.3026 | ppl 10.00 |
    wall 12s | best``. ``split`` (else ``train`` for an epoch's summary) labels the metrics."""
    parts = []
    if "epoch" in fields:
        parts.append(f"epoch {fields['epoch']}")
    if "updates" in fields:
        parts.append(f"update {fields['updates']}")
    label = fields.get("split") or {"train_epoch": "train"}.get(event, "")
    shown = [(k, v) for k, v in fields.items() if k not in _PLACE and k not in _HIDDEN]
    metrics = [
        f"{k} {format_seconds(v) if k in ('wall', 'seconds') else format_value(v)}"
        for k, v in shown
    ]
    if metrics and label:
        metrics[0] = f"{label} {metrics[0]}"
    parts += metrics
    if fields.get("best"):
        parts.append("best")
    return " | ".join(parts)


class Reporter:
    """Plain stderr reporter: one line per message, progress at most every ``log_interval_s``."""

    def __init__(
        self,
        log_interval_s: float = 10.0,
        quiet: bool = False,
        log_format: LogFormat = "simple",
        log_file: TextIO | None = None,
    ) -> None:
        self.log_interval_s = log_interval_s
        self.quiet = quiet
        self.log_format: LogFormat = log_format
        self.log_file = log_file

    def info(self, message: str) -> None:
        if not self.quiet:
            self._emit("info", message, {"message": message})

    def warning(self, message: str) -> None:
        self._emit("warning", f"warning: {message}", {"message": message})

    def record(self, event: str, **fields: Any) -> None:
        """A structured log line (a training update, an epoch, a validation)."""
        if not self.quiet:
            self._emit(event, render_record(event, fields), fields)

    def progress_line(
        self, description: str, done: int, total: int | None, metrics: dict[str, Any]
    ) -> None:
        """A progress report without a bar (a log, not a terminal)."""
        if self.quiet:
            return
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
        text = f"{description} {done}{f'/{total}' if total else ''} {shown}".rstrip()
        self._emit("progress", text, {"description": description, "done": done, "total": total,
                                      **metrics})  # fmt: skip

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.quiet:
            return
        data = {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}
        self._emit("table", plain_table(title, columns, rows), data)

    def _emit(self, event: str, text: str, fields: dict[str, Any], show: bool = True) -> None:
        """Write the line in the log format: on stderr (unless ``show`` is False) and to the
        log file."""
        line = text
        if self.log_format == "json":
            line = json.dumps({"event": event, **fields}, default=str)
        if show:
            self._show(event, line, fields)
        if self.log_file is not None:
            self.log_file.write(line + "\n")

    def _show(self, event: str, line: str, fields: dict[str, Any]) -> None:
        print(line, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def progress(
        self, description: str, total: int | None = None, lines: bool = True
    ) -> Iterator[Progress]:
        """A progress report for a loop of ``total`` steps; ``lines=False``: no periodic lines
        without a bar (the caller logs records instead)."""
        yield Progress(self, description, total, lines)

    def quieted(self) -> Reporter:
        """A copy of this reporter that shows warnings only (no info, tables or progress)."""
        other = copy.copy(self)
        other.quiet = True
        return other

    def logging_to(self, log_format: LogFormat, log_file: TextIO | None) -> Reporter:
        """A copy of this reporter that writes ``log_format`` lines, also to ``log_file``."""
        other = copy.copy(self)
        other.log_format, other.log_file = log_format, log_file
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
