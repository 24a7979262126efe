"""Training speed of ``rnnkit train`` (translation) against a bare PyTorch loop, in the same run.

Workload and model: :mod:`seq2seq_workload` ("reversed PTB", 2×256 LSTMs, general attention,
input feeding, no dropout), Adam 1e-3, batches of 64 sentences. Both sides train on the same
length-bucketed batches; the rnnkit side is the real loop (``fit``: progress, logging, the final
checkpoint) stopped by ``--max-update``. Runs alternate (raw, rnnkit, ...) so drift hits both;
the median target tokens/s of each and their ratio are printed. Each run is a fresh process
(spawned, warmed up with 3 updates of its own side before the timed ones), as a real command is:
what one side sets process-wide (rnnkit's malloc settings, oneDNN's caches) cannot help the other.

    python benchmarks/train_seq2seq.py --updates 60 --repeats 3 --threads 2 [--amp bf16]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seq2seq_workload import MODEL, RawSeq2Seq, make_workload  # noqa: E402

from rnnkit.config import resolve  # noqa: E402
from rnnkit.tasks import load_task  # noqa: E402
from rnnkit.tasks.translation import collate  # noqa: E402
from rnnkit.training.config import TrainConfig  # noqa: E402
from rnnkit.training.loop import build_run, fit  # noqa: E402
from rnnkit.training.precision import keep_freed_memory  # noqa: E402

BATCH = 64


def train_config(updates: int, amp: str = "none") -> TrainConfig:
    return resolve(TrainConfig, dict(batch_size=BATCH, optimizer="adam", lr=1e-3, seed=1,
                                     max_update=updates, log_interval=1e9, reset=True,
                                     no_epoch_checkpoints=True, amp=amp))  # fmt: skip


def raw_steps(data: Path, updates: int) -> Iterator[tuple[int, float]]:
    """Bare PyTorch on the batches rnnkit would train on: (target tokens, seconds) per update,
    the batch's collation included. ``benchmarks/peers.py`` times its bare loop with this too."""
    torch.manual_seed(1)
    task = load_task(data)
    pad, eos = task.tgt_dict.pad_index, task.tgt_dict.eos_index
    model = RawSeq2Seq(len(task.src_dict), len(task.tgt_dict), pad)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    src, tgt = task.datasets("train")
    # The batches rnnkit trains on: its epoch seed is the first draw of a generator seeded 1.
    seed = int(torch.randint(2**31 - 1, (1,), generator=torch.Generator().manual_seed(1)))
    batches = task.batches("train", train_config(updates), seed=seed, limit=True)
    for ids in itertools.islice(itertools.cycle(batches), updates):
        t0 = time.perf_counter()
        batch = collate(ids.tolist(), [src[i] for i in ids], [tgt[i] for i in ids], pad, eos)
        loss, n = model.loss(batch, pad)
        opt.zero_grad(set_to_none=True)
        (loss / n).backward()
        opt.step()
        yield int(n), time.perf_counter() - t0


def raw_loop(data: Path, updates: int) -> float:
    """Bare PyTorch on the batches rnnkit would train on. Returns target tokens/s."""
    steps = list(raw_steps(data, updates))
    return sum(n for n, _ in steps) / sum(t for _, t in steps)


def rnnkit_loop(data: Path, updates: int, save_dir: Path, amp: str = "none") -> float:
    """The real ``rnnkit train`` loop for ``updates`` updates. Returns target tokens/s."""
    run = build_run(train_config(updates, amp), load_task(data), "attention_seq2seq", [MODEL],
                    save_dir)  # fmt: skip
    counted = [0]
    loss = run.task.loss

    def counting_loss(*a, **k):  # count the target tokens the loop trains on
        result = loss(*a, **k)
        counted[0] += result[1]
        return result

    run.task.loss = counting_loss
    t0 = time.perf_counter()
    keep_freed_memory()  # as `rnnkit train` does for its process
    fit(run)
    return counted[0] / (time.perf_counter() - t0)


def measure(side: str, data: Path, updates: int, save_dir: Path, amp: str, threads: int) -> float:
    """Target tokens/s of ``side`` (raw or rnnkit) after 3 updates of warm-up, in this process."""
    if threads:
        torch.set_num_threads(threads)
    if side == "raw":
        raw_loop(data, 3)
        return raw_loop(data, updates)
    rnnkit_loop(data, 3, save_dir.with_name(save_dir.name + "-warm"), amp)
    return rnnkit_loop(data, updates, save_dir, amp)


def isolated(*args: object) -> float:
    """:func:`measure` in a fresh spawned process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--amp", choices=["none", "bf16"], default="none",
                   help="also time rnnkit train --amp bf16 (the raw loop stays fp32)")  # fmt: skip
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_workload(Path(tmp))
        raw, kit, bf16 = [], [], []
        n, t = args.updates, args.threads
        for r in range(args.repeats):
            raw.append(isolated("raw", data, n, Path(tmp) / f"raw{r}", "none", t))
            kit.append(isolated("rnnkit", data, n, Path(tmp) / f"run{r}", "none", t))
            extra = ""
            if args.amp == "bf16":
                bf16.append(isolated("rnnkit", data, n, Path(tmp) / f"bf16{r}", "bf16", t))
                extra = f", rnnkit --amp bf16 {bf16[-1]:,.0f} tok/s"
            print(f"repeat {r + 1}: raw {raw[-1]:,.0f} tok/s, rnnkit {kit[-1]:,.0f} tok/s{extra}",
                  file=sys.stderr)  # fmt: skip
    r_med, k_med = statistics.median(raw), statistics.median(kit)
    print(f"reversed PTB, attention_seq2seq 2x256 general+input feeding, batch {BATCH}, "
          f"{args.updates} updates x {args.repeats}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    print(f"raw PyTorch  {r_med:,.0f} target tok/s")
    print(f"rnnkit train {k_med:,.0f} target tok/s")
    print(f"ratio rnnkit/raw {k_med / r_med:.3f}")
    if bf16:
        b_med = statistics.median(bf16)
        print(f"rnnkit train --amp bf16 {b_med:,.0f} target tok/s ({b_med / k_med:.2f}x fp32)")


if __name__ == "__main__":
    main()
