"""Which checkpoint files a save dir keeps, named as fairseq names them.

``checkpoint{epoch}.pt`` (``--keep-last-epochs``), ``checkpoint_{epoch}_{updates}.pt``
(``--save-interval-updates``, ``--keep-interval-updates``) and
``checkpoint.best_{metric}_{value:.2f}.pt`` (``--keep-best-checkpoints``: the K best
validations by ``--best-checkpoint-metric``, in its direction). The value in a best file's name
is rounded to two decimals as in fairseq, so two validations that round alike share one file:
the later one overwrites it. Pruning reads the values back from the names, so it also sees the
files an earlier (resumed) run wrote.
"""

from __future__ import annotations

import math
import re
from pathlib import Path


def prune_epoch_checkpoints(save_dir: Path, done: int, keep: int) -> None:
    """Remove ``checkpoint{n}.pt`` for every epoch n up to ``done - keep``."""
    for old in range(1, done - keep + 1):
        (save_dir / f"checkpoint{old}.pt").unlink(missing_ok=True)


def prune_interval_checkpoints(save_dir: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` ``checkpoint_{epoch}_{updates}.pt`` (by updates)."""
    found = []
    for path in save_dir.glob("checkpoint_*_*.pt"):
        parts = path.stem.split("_")[1:]
        if len(parts) == 2 and all(x.isdigit() for x in parts):
            found.append((int(parts[1]), path))
    for _, path in sorted(found)[: max(len(found) - keep, 0)]:
        path.unlink(missing_ok=True)


def best_checkpoint_name(metric: str, value: float) -> str:
    """fairseq's name of a best-K checkpoint: ``checkpoint.best_loss_3.42.pt``."""
    return f"checkpoint.best_{metric}_{value:.2f}.pt"


def best_checkpoints(save_dir: Path, metric: str, maximize: bool) -> list[tuple[float, Path]]:
    """The best-K files of ``metric`` in ``save_dir`` with their values, best first."""
    pattern = re.compile(rf"checkpoint\.best_{re.escape(metric)}_(-?\d+(?:\.\d+)?)\.pt")
    found = []
    for path in save_dir.glob(f"checkpoint.best_{metric}_*.pt"):
        m = pattern.fullmatch(path.name)
        if m:
            found.append((float(m.group(1)), path))
    return sorted(found, key=lambda vp: -vp[0] if maximize else vp[0])


def is_among_best(save_dir: Path, metric: str, value: float, keep: int, maximize: bool) -> bool:
    """Whether a validation of ``value`` belongs to the ``keep`` best files kept so far."""
    if keep <= 0 or not math.isfinite(value):
        return False
    kept = best_checkpoints(save_dir, metric, maximize)
    if len(kept) < keep or best_checkpoint_name(metric, value) in {p.name for _, p in kept}:
        return True
    worst = kept[keep - 1][0]
    return value > worst if maximize else value < worst


def prune_best_checkpoints(save_dir: Path, metric: str, keep: int, maximize: bool) -> None:
    """Remove all but the ``keep`` best ``checkpoint.best_{metric}_*.pt``."""
    for _, path in best_checkpoints(save_dir, metric, maximize)[keep:]:
        path.unlink(missing_ok=True)
