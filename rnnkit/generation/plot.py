"""Attention heatmaps: one PNG per sentence, source tokens across, target tokens down.

matplotlib is an optional extra (``pip install rnnkit[plot]``); it is imported only here and only
when a plot is asked for, with a clear error when it is missing. Files are written to a temporary
name and renamed, like every rnnkit output.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from rnnkit.errors import RnnkitError
from rnnkit.io import atomic_write


def plot_attention(
    weights: Tensor, source: list[str], target: list[str], path: str | os.PathLike
) -> Path:
    """Save ``weights`` (T, S) — target step × source position — as a heatmap PNG at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RnnkitError("--plot-attention needs matplotlib: pip install 'rnnkit[plot]'") from None
    t, s = weights.shape
    fig, ax = plt.subplots(figsize=(max(3.0, 0.35 * s + 1.5), max(2.5, 0.35 * t + 1.2)))
    ax.imshow(weights.float().cpu().numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(s), source[:s], rotation=90, fontsize=8)
    ax.set_yticks(range(t), target[:t], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    out = Path(path)
    with atomic_write(out, mode="wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return out
