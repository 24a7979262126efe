"""Rich implementation of the library's reporting interface, for terminals.

On a TTY progress is a rich bar with live metrics; otherwise the plain reporter's periodic log
lines are used, so logs of batch jobs stay readable. While a bar is live, the ``train`` records
a training run logs every ``--log-interval`` updates go to the log file only: the bar shows the
same numbers. ``--log-format json`` shows no bars (its log is for programs). Everything goes to
stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from rnnkit.reporting import Progress, Reporter, _fmt, plain_table

console = Console(stderr=True, soft_wrap=True)  # log lines must not be wrapped mid-path


class _RichProgress(Progress):
    def __init__(self, reporter: Reporter, bar: RichProgress, task: Any, description: str) -> None:
        super().__init__(reporter, description, None)
        self.bar, self.task = bar, task

    def update(self, advance: int = 1, **metrics: Any) -> None:
        self.done += advance
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
        self.bar.update(self.task, advance=advance, metrics=shown)


class RichReporter(Reporter):
    """Rich tables always; rich progress bars only when stderr is a terminal."""

    bars = 0  # live bars (an instance attribute once one starts)

    def _show(self, event: str, line: str, fields: dict[str, Any]) -> None:
        if event == "train" and self.bars:
            return  # the bar shows it
        if event == "warning" and self.log_format == "simple":
            console.print(f"[yellow]warning:[/] {fields['message']}", highlight=False)
        else:
            console.print(line, markup=False, highlight=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.quiet:
            return
        if self.log_format == "json":
            super().table(title, columns, rows)
            return
        t = Table(title=title, title_justify="left")
        for c in columns:
            t.add_column(str(c), justify="right" if c != columns[0] else "left")
        for r in rows:
            t.add_row(*(_fmt(c) for c in r))
        console.print(t)
        if self.log_file is not None:  # the plain table, for the log file alone
            self.log_file.write(plain_table(title, columns, rows) + "\n")

    @contextlib.contextmanager
    def progress(
        self, description: str, total: int | None = None, lines: bool = True
    ) -> Iterator[Progress]:
        if self.quiet or self.log_format == "json" or not sys.stderr.isatty():
            with super().progress(description, total, lines) as p:
                yield p
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
        )
        self.bars += 1
        try:
            # A bar of unknown length (validation) goes away when done; the record stays.
            with RichProgress(*columns, console=console, transient=total is None) as bar:
                task = bar.add_task(description, total=total, metrics="")
                yield _RichProgress(self, bar, task, description)
        finally:
            self.bars -= 1
