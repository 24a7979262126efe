"""Data-parallel throughput on CPU: 1 process × 1 thread, 1 × 2 threads, 2 processes × 1 thread.

Every layout trains the same model on the same global batch (lm: ``--batch-size`` streams, split
between the workers) with the real update (``rnnkit.training.loop.train_update``: forward,
backward, gradient all-reduce over gloo, clipping, SGD step, and the per-update all-reduce of the
loss statistics). Each layout runs ``--repeats`` times in turn, in a fresh process (2 workers
through torchrun); a run times ``--updates`` updates after ``--warmup``. Prints target tokens/s
(median of the repeats) and the ratios: 2 × 1 over 1 × 1 is the speed-up of the second process,
and half of it the scaling efficiency.

    .venv/bin/python benchmarks/ddp.py [--updates 60 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAYOUTS = [("1 process × 1 thread", 1, 1), ("1 process × 2 threads", 1, 2),
           ("2 processes × 1 thread (gloo)", 2, 1)]  # fmt: skip


def make_data(root: Path, vocab: int, tokens: int) -> None:
    """A word-level lm data dir: Zipf-distributed words in lines of 20."""
    from rnnkit.data.binarized import DatasetWriter
    from rnnkit.dictionary import Dictionary

    d = Dictionary()
    for i in range(vocab):
        d.add_symbol(f"w{i}")
    d.finalize()
    d.save(root / "dict.txt")
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.2, tokens), vocab) - 1 + d.nspecial
    for split, n in (("train", tokens), ("valid", tokens // 10)):
        w = DatasetWriter(root / f"{split}.bin", np.uint16)
        for start in range(0, n, 20):
            w.add(ids[start : start + 20].astype(np.int64))
        w.finalize(root / f"{split}.idx")
    (root / "preprocess.json").write_text(json.dumps({"task": "lm", "tokenizer": "space"}))


def worker(args: argparse.Namespace) -> None:
    """One process of a layout: time ``args.updates`` updates; rank 0 prints a JSON line."""
    import torch

    from rnnkit.config import resolve
    from rnnkit.tasks import load_task
    from rnnkit.training import distributed
    from rnnkit.training.config import TrainConfig
    from rnnkit.training.loop import build_run, train_update

    cfg = resolve(TrainConfig, {"batch_size": args.batch_size, "bptt": args.bptt, "lr": 1.0,
                                "clip_norm": 5.0, "threads": args.threads, "seed": 1})  # fmt: skip
    with tempfile.TemporaryDirectory() as save:
        run = build_run(cfg, load_task(args.data), args.arch, [{}], Path(save))
        world = distributed.world_size()
        shard = {"shard": (distributed.rank(), world)} if world > 1 else {}
        itr = run.task.train_iterator(cfg, run.model, run.device, run.data_rng, **shard)
        windows = iter(itr)
        for _ in range(args.warmup):
            train_update(run, [next(windows)], itr)
        t0, tokens = time.perf_counter(), 0.0
        for _ in range(args.updates):
            tokens += train_update(run, [next(windows)], itr)[1]
        seconds = time.perf_counter() - t0
        del run, itr, windows  # before teardown: DDP holds the process group
    if distributed.rank() == 0:
        print(json.dumps({"tokens_per_s": tokens / seconds, "threads": torch.get_num_threads()}))
    distributed.teardown()


def launch(args: argparse.Namespace, procs: int, threads: int) -> float:
    """One run of a layout in fresh processes; returns its tokens/s."""
    script = [__file__, "--worker", "--data", str(args.data), "--threads", str(threads)]
    script += ["--arch", args.arch, "--batch-size", str(args.batch_size), "--bptt", str(args.bptt)]
    script += ["--updates", str(args.updates), "--warmup", str(args.warmup)]
    cmd = [sys.executable, *script]
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={procs}", *script]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arch", default="lstm_lm_zaremba_small")
    p.add_argument("--batch-size", type=int, default=20, help="streams of the whole job")
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--vocab", type=int, default=10000)
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        args.data = Path(tmp)
        make_data(args.data, args.vocab, 200_000)
        speeds: dict[str, list[float]] = {name: [] for name, _, _ in LAYOUTS}
        for r in range(args.repeats):
            for name, procs, threads in LAYOUTS:
                load = os.getloadavg()[0]
                speeds[name].append(launch(args, procs, threads))
                print(f"repeat {r + 1} {name}: {speeds[name][-1]:,.0f} tokens/s (load {load:.2f})",
                      file=sys.stderr, flush=True)  # fmt: skip
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(f"{args.arch}, {args.batch_size} streams × bptt {args.bptt} per update, "
          f"median of {args.repeats}")  # fmt: skip
    print("| layout | tokens/s (median) | runs |\n| --- | ---: | --- |")
    for name, v in speeds.items():
        print(f"| {name} | {median[name]:,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |")
    one, two_threads, two_procs = (median[name] for name, _, _ in LAYOUTS)
    print(f"2 processes / 1 process × 1 thread: {two_procs / one:.2f} "
          f"(scaling efficiency {two_procs / one / 2:.2f})")  # fmt: skip
    print(f"2 processes / 1 process × 2 threads: {two_procs / two_threads:.2f}")
    print(f"1 process × 2 threads / × 1 thread: {two_threads / one:.2f}")


if __name__ == "__main__":
    main()
