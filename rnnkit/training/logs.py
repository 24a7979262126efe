"""Where a training run's records go: ``train_log.jsonl``, the log on stderr (``--log-format``,
``--log-file``) and TensorBoard (``--tensorboard-logdir``).

:func:`training_logs` opens them for :func:`~rnnkit.training.loop.fit` (rank 0 only; other
workers log nothing) and hands out a :class:`TrainLog`, to which the loop writes each record
once: a ``train`` record every ``--log-interval`` updates, ``train_epoch`` at the end of an
epoch, ``valid`` per validation split. Every record carries ``wall``, the seconds of training
wall time, summed over resumed runs (it lives in the checkpoint's progress).
:func:`check_logging` refuses an unwritable ``--log-file`` or a missing ``tensorboard`` package
before any work.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import torch

from rnnkit.errors import RnnkitError
from rnnkit.reporting import get_reporter, using_reporter
from rnnkit.training import distributed

if TYPE_CHECKING:
    from rnnkit.training.config import TrainConfig
    from rnnkit.training.run import Run

TENSORBOARD_MISSING = (
    "--tensorboard-logdir needs the tensorboard package: pip install rnnkit[tensorboard]"
)
TRAIN_SCALARS = ("loss", "ppl", "lr", "tokens_per_s")


class RecordFile(Protocol):
    """``train_log.jsonl`` (:class:`~rnnkit.training.loop.MetricsLog`)."""

    def write(self, **record: Any) -> None: ...


def open_log_file(path: str) -> TextIO:
    """``--log-file``, opened to append, line-buffered; a path that cannot be written is an
    :class:`RnnkitError` naming it."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed by the caller)
    except OSError as e:
        raise RnnkitError(f"--log-file {path}: {e.strerror or e}") from None


def summary_writer(logdir: str) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``logdir``, imported only when asked for."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RnnkitError(TENSORBOARD_MISSING) from None
    return SummaryWriter(log_dir=logdir)


def check_logging(cfg: TrainConfig) -> None:
    """Refuse, before any work, a ``--log-file`` that cannot be written or a
    ``--tensorboard-logdir`` without the ``tensorboard`` package."""
    if cfg.log_file:
        open_log_file(cfg.log_file).close()
    if cfg.tensorboard_logdir:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise RnnkitError(TENSORBOARD_MISSING) from None


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, trainable ones) of ``model``."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def log_model(run: Run) -> None:
    """The model's parameter count and its modules, once at the start of training."""
    total, trainable = parameter_counts(run.model)
    reporter = get_reporter()
    reporter.info(f"model {run.arch}: {total:,} parameters ({trainable:,} trainable)")
    reporter.info(str(run.model))


class TrainLog:
    """Writes each record to ``train_log.jsonl``, the reporter and TensorBoard, with ``wall``.

    ``wall`` counts from when the log was opened, on top of the ``wall`` of the run's progress
    (what the resumed checkpoint had); :meth:`tick` brings the progress up to date, so a
    checkpoint written after it continues the count.
    """

    def __init__(self, run: Run, jsonl: RecordFile, scalars: Any = None) -> None:
        self.run, self.jsonl, self.scalars = run, jsonl, scalars
        self._last = time.monotonic()

    def tick(self) -> float:
        """Add the time since the last tick to ``run.progress.wall``; return it."""
        now = time.monotonic()
        self.run.progress.wall += now - self._last
        self._last = now
        return self.run.progress.wall

    def write(self, event: str, *, best: bool = False, **fields: Any) -> None:
        """One record: ``event`` (train | train_epoch | valid) and its fields; ``best`` marks
        the validation that is the best so far (in the log line)."""
        fields["wall"] = round(self.tick(), 3)
        self.jsonl.write(event=event, **fields)
        get_reporter().record(event, **fields, **({"best": True} if best else {}))
        if self.scalars is not None:
            self._add_scalars(event, fields)

    def _add_scalars(self, event: str, fields: dict[str, Any]) -> None:
        step = fields["updates"]
        if event == "train":
            for name in TRAIN_SCALARS:
                self.scalars.add_scalar(f"train/{name}", fields[name], step)
        elif event == "valid":
            for name, value in fields.items():
                if name not in ("split", "epoch", "updates", "tokens", "wall"):
                    self.scalars.add_scalar(f"{fields['split']}/{name}", value, step)
        self.scalars.flush()


@contextlib.contextmanager
def training_logs(run: Run, jsonl: RecordFile) -> Iterator[TrainLog]:
    """The run's :class:`TrainLog` for the ``with`` block, with the reporter writing
    ``--log-format`` lines (on rank 0 also to ``--log-file``); files closed afterwards."""
    cfg, main = run.cfg, distributed.rank() == 0
    with contextlib.ExitStack() as stack:
        log_file = None
        if main and cfg.log_file:
            log_file = stack.enter_context(open_log_file(cfg.log_file))
        scalars = None
        if main and cfg.tensorboard_logdir:
            scalars = summary_writer(os.fspath(cfg.tensorboard_logdir))
            stack.callback(scalars.close)
        stack.enter_context(using_reporter(get_reporter().logging_to(cfg.log_format, log_file)))
        yield TrainLog(run, jsonl, scalars)
