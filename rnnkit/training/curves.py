"""Training curves (``rnnkit plot``): the metrics of runs' ``train_log.jsonl`` as series, drawn.

:func:`read_log` turns a save dir's ``train_log.jsonl`` (one JSON object per line, written by
:class:`~rnnkit.training.loop.MetricsLog`) into :class:`Series`: per metric, one training curve
(the ``train`` records of ``--log-interval``, or the ``train_epoch`` ones when a run logged none)
and one curve per validation split (``valid`` records), each point at an update count and a wall
time. Wall time is a record's ``wall`` (training seconds, continued across resumed runs) when it
has one, else its ``time`` less the log's start (the earliest record's time, a ``train_epoch``
record's less its ``seconds``). A run that resumed from an earlier checkpoint logs some updates
twice: the later records replace the earlier ones. ``ppl`` of a ``train_epoch`` record,
which logs only ``loss`` (nats), is ``exp(loss)``.

:func:`draw_curves` draws them with matplotlib (the ``plot`` extra, imported only there, no
pyplot state): one row of panels per metric, by update (left) and by wall time (right), runs
overlaid (a colour per run; training solid, validation dashed); the file is written by temp file
and rename. Reading needs no matplotlib.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError, at
from rnnkit.io import atomic_write
from rnnkit.reporting import get_reporter

LOG_NAME = "train_log.jsonl"
_NOT_METRICS = {"time", "wall", "event", "split", "epoch", "updates", "seconds", "tokens"}


@dataclass
class Series:
    """One curve: ``values`` of ``metric`` at ``updates`` and ``wall`` seconds.

    ``kind`` is ``train`` or ``valid``; ``split`` the validation split (None for training).
    """

    run: str
    metric: str
    kind: str
    split: str | None = None
    updates: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.run} {self.split if self.kind == 'valid' else 'train'}"

    def add(self, updates: int, wall: float, value: float) -> None:
        """Append a point; points at or after ``updates`` logged before (a resumed run that
        redid them) are dropped first."""
        while self.updates and self.updates[-1] >= updates:
            del self.updates[-1], self.wall[-1], self.values[-1]
        self.updates.append(updates)
        self.wall.append(wall)
        self.values.append(value)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``train_log.jsonl``; a damaged line is an error naming ``file:line``."""
    if not path.is_file():
        raise RnnkitError(f"{path}: no training log (is it a save dir of rnnkit train?)")
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                why = getattr(e, "msg", "not UTF-8")
                raise RnnkitError(f"{at(path, number)}: damaged log line ({why})") from None
            if not isinstance(record, dict):
                raise RnnkitError(f"{at(path, number)}: damaged log line (not a JSON object)")
            if record.get("event") in ("train", "train_epoch", "valid"):
                for key in ("updates", "time"):
                    if not isinstance(record.get(key), int | float):
                        raise RnnkitError(
                            f"{at(path, number)}: damaged log line (a {record['event']} "
                            f"record without a number {key!r})"
                        )
            records.append(record)
    return records


def read_log(save_dir: str | os.PathLike, metrics: Sequence[str], run: str) -> list[Series]:
    """The curves of ``metrics`` in ``save_dir``'s training log, named ``run`` (see the module's
    doc); a metric the run never logged has no series."""
    path = Path(save_dir) / LOG_NAME
    records = read_records(path)
    start = _start_time(records)
    has_train = any(r.get("event") == "train" for r in records)
    series: dict[tuple[str, str, str | None], Series] = {}
    for r in records:
        event = r.get("event")
        if event == "valid":
            kind, split = "valid", str(r.get("split", "valid"))
        elif event == ("train" if has_train else "train_epoch"):
            kind, split = "train", None
        else:
            continue
        wall = float(r["wall"]) if isinstance(r.get("wall"), int | float) else r["time"] - start
        for metric in metrics:
            value = _value(r, metric, event)
            if value is not None:
                key = (metric, kind, split)
                if key not in series:
                    series[key] = Series(run, metric, kind, split)
                series[key].add(int(r["updates"]), wall, value)
    return list(series.values())


def _start_time(records: Sequence[dict[str, Any]]) -> float:
    """When the log's run started, as far as the log tells: the earliest record time, an epoch's
    record counted from the epoch's start (its time less its ``seconds``)."""
    starts = []
    for r in records:
        if isinstance(r.get("time"), int | float):
            seconds = r.get("seconds", 0) if r.get("event") == "train_epoch" else 0
            starts.append(r["time"] - (seconds if isinstance(seconds, int | float) else 0))
    return min(starts, default=0.0)


def _value(record: dict[str, Any], metric: str, event: str) -> float | None:
    """``metric`` of ``record`` as a finite float, or None where it has none."""
    value = record.get(metric)
    if value is None and metric == "ppl" and event == "train_epoch":
        loss = record.get("loss")
        value = math.exp(min(loss, 100)) if isinstance(loss, int | float) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def run_names(save_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """Legend names: each dir's folder name, with as many parent folders as it takes to tell
    it from the other runs (``row1/ckpt``, ``row2/ckpt``, ``base``)."""
    parts = [Path(d).resolve().parts for d in save_dirs]

    def tail(p: tuple[str, ...], depth: int) -> str:
        return "/".join(p[-depth:]).lstrip("/") or "/"

    names = []
    for i, mine in enumerate(parts):
        others = [p for k, p in enumerate(parts) if k != i]
        depth = 1
        while depth < len(mine) and any(tail(p, depth) == tail(mine, depth) for p in others):
            depth += 1
        names.append(tail(mine, depth))
    return names


def collect(save_dirs: Sequence[str | os.PathLike], metrics: Sequence[str]) -> list[Series]:
    """Every run's curves of ``metrics``; a metric missing in a run is a warning, a metric no
    run logged an error (every log is read first, so a missing or damaged one is named)."""
    if not metrics:
        raise RnnkitError("--metric: give at least one metric name (loss, ppl, bleu, ...)")
    per_run = [
        read_log(d, metrics, name) for d, name in zip(save_dirs, run_names(save_dirs), strict=True)
    ]
    found = {s.metric for run in per_run for s in run}
    missing = [m for m in metrics if m not in found]
    if len(missing) == len(metrics):
        raise RnnkitError(f"no run logged {', '.join(missing)}")
    for d, run in zip(save_dirs, per_run, strict=True):
        have = {s.metric for s in run}
        for metric in metrics:
            if metric not in have:
                get_reporter().warning(f"{Path(d) / LOG_NAME}: no {metric!r} logged; skipped")
    return [s for run in per_run for s in run]


def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds >= 3 * 3600:
        return "hours", 3600.0
    if seconds >= 3 * 60:
        return "minutes", 60.0
    return "seconds", 1.0


def draw_curves(
    series: Sequence[Series], metrics: Sequence[str], output: str | os.PathLike
) -> Path:
    """Draw ``series`` (from :func:`collect`) to ``output`` (its suffix gives the format: png,
    pdf, svg, ...), a row per metric that has a series; returns the path written."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RnnkitError("rnnkit plot needs matplotlib: pip install 'rnnkit[plot]'") from None
    out = Path(output)
    fmt = out.suffix.lstrip(".").lower() or "png"
    rows = [m for m in metrics if any(s.metric == m for s in series)]
    fig = Figure(figsize=(11, 3.2 * len(rows)), layout="constrained")
    if fmt not in fig.canvas.get_supported_filetypes():
        supported = ", ".join(sorted(fig.canvas.get_supported_filetypes()))
        raise RnnkitError(f"--output {out}: unknown image format {fmt!r} (one of: {supported})")
    axes = fig.subplots(len(rows), 2, squeeze=False)
    runs = list(dict.fromkeys(s.run for s in series))
    splits = list(dict.fromkeys(s.split for s in series if s.kind == "valid"))
    styles = ["--", ":", "-."]
    unit, scale = _time_unit(max((w for s in series for w in s.wall), default=0.0))
    for row, metric in zip(axes, rows, strict=True):
        for s in series:
            if s.metric != metric:
                continue
            color = f"C{runs.index(s.run) % 10}"
            style = "-" if s.kind == "train" else styles[splits.index(s.split) % len(styles)]
            marker = "o" if s.kind == "valid" else None
            walls = [w / scale for w in s.wall]
            for ax, xs in ((row[0], s.updates), (row[1], walls)):
                ax.plot(
                    xs, s.values, style, color=color, marker=marker, markersize=3, label=s.label
                )
        row[0].set_xlabel("updates")
        row[1].set_xlabel(f"wall time ({unit})")
        for ax in row:
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize="small")
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format=fmt, dpi=100)
    return out
