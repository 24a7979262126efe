"""What each training lever of issue 16.2 is worth: the rnnkit translation loop of
``train_seq2seq.py`` with one lever switched off at a time, against the bare loop, alternating,
each run a fresh spawned process (warmed up with 3 updates of its own).

Levers: ``cells`` (the decoder's first-layer input projection of all target positions in one
product, then torch's LSTM/GRU cells per step instead of one oneDNN kernel call per step),
``nonpad`` (output layer and loss on non-padding positions only), ``loss`` (one-buffer summed
cross-entropy), ``malloc`` (glibc keeps freed memory: no page faults on each update's big
buffers). ``none`` switches all of them off: the loop as it was before.

    python benchmarks/levers.py --updates 40 --repeats 2 --threads 2 [--configs all no-cells ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
from pathlib import Path

import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_seq2seq  # noqa: E402
from seq2seq_workload import make_workload  # noqa: E402

LEVERS = ("cells", "nonpad", "loss", "malloc")


def switch_off(levers: tuple[str, ...]) -> None:
    """Put the code paths of ``levers`` back to what they were before issue 16.2."""
    from rnnkit.models.seq2seq import Seq2Seq
    from rnnkit.modules.recurrent import RecurrentStack
    from rnnkit.training import criteria

    if "cells" in levers:
        RecurrentStack.steps_by_cells = lambda self, x: False  # type: ignore[method-assign]
    if "nonpad" in levers:
        forward = Seq2Seq.forward

        def every_position(self, src, lengths, prev, keep=None):  # type: ignore[no-untyped-def]
            scores, attn = forward(self, src, lengths, prev)
            return (scores if keep is None else scores[keep]), attn

        Seq2Seq.forward = every_position  # type: ignore[method-assign]
    if "loss" in levers:

        def torch_loss(logits, targets, ignore_index=-100, eps=0.0):  # type: ignore[no-untyped-def]
            return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum",
                                   label_smoothing=eps)  # fmt: skip

        criteria.summed_cross_entropy = torch_loss  # type: ignore[assignment]
    if "malloc" in levers:
        train_seq2seq.keep_freed_memory = lambda: False  # type: ignore[assignment]


def measure(config: str, data: Path, updates: int, save_dir: Path, threads: int) -> float:
    if config == "raw":
        return train_seq2seq.measure("raw", data, updates, save_dir, "none", threads)
    off = LEVERS if config == "none" else tuple(c[3:] for c in config.split("+") if c != "all")
    switch_off(off)
    return train_seq2seq.measure("rnnkit", data, updates, save_dir, "none", threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=40)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", nargs="+",
                   default=["all", *(f"no-{lever}" for lever in LEVERS), "none"],
                   help="all, none, or no-LEVER[+no-LEVER...] (those switched off)")  # fmt: skip
    args = p.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_workload(Path(tmp))
        times: dict[str, list[float]] = {c: [] for c in ["raw", *args.configs]}
        for r in range(args.repeats):
            for config in times:
                with spawn.Pool(1) as pool:
                    run = (config, data, args.updates, Path(tmp) / f"{config}{r}", args.threads)
                    times[config].append(pool.apply(measure, run))
                print(f"repeat {r + 1} {config}: {times[config][-1]:,.0f} tok/s", file=sys.stderr)
    raw = statistics.median(times["raw"])
    print(f"{args.updates} updates x {args.repeats}, threads {args.threads}")
    for config, values in times.items():
        med = statistics.median(values)
        print(f"{config:24s} {med:8,.0f} target tok/s  ratio to raw {med / raw:.3f}")


if __name__ == "__main__":
    main()
