"""Training speed of ``rnnkit train`` (lm task) against a bare PyTorch loop, in the same run.

Both sides train the same shape on the same token stream: embedding → nn.LSTM → linear →
cross-entropy → clip → optimizer step, stateful BPTT with a detached carried state. The rnnkit
side is the real training loop (`fit`, progress, logging, final checkpoint), stopped by
``--max-update``. Runs alternate (raw, rnnkit, raw, rnnkit, ...) so drift hits both; the median
tokens/s of each and the ratio are printed, with peak RSS. Each run is a fresh spawned process,
warmed up with 5 updates of its own side, so nothing one side sets process-wide (rnnkit's malloc
settings) reaches the other.

    python benchmarks/train_lm.py --shape small --updates 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.config import resolve
from rnnkit.data.binarized import DatasetWriter
from rnnkit.dictionary import Dictionary
from rnnkit.tasks import load_task
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit
from rnnkit.training.precision import keep_freed_memory

SHAPES = {
    "small": dict(arch="lstm_lm_zaremba_small", hidden=200, layers=2, dropout=0.0),
    "medium": dict(arch="lstm_lm_zaremba_medium", hidden=650, layers=2, dropout=0.5),
}
PTB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ptb" / "ptb.train.txt"


def make_data(root: Path, vocab: int, ntokens: int) -> Path:
    """A data dir with PTB's first tokens when available, else random ids (same vocab size)."""
    d = Dictionary()
    if PTB.is_file():
        words = PTB.read_text().replace("\n", " </s> ").split()[:ntokens]
        for w in words:
            d.add_symbol(w)
        d.finalize()
        ids = np.array([d.index(w) for w in words], dtype=np.uint16)
        source = "ptb.train.txt"
    else:
        for i in range(vocab - 8):
            d.add_symbol(f"w{i}")
        d.finalize()
        ids = np.random.default_rng(0).integers(4, len(d), ntokens).astype(np.uint16)
        source = "random ids"
    data = root / "data"
    data.mkdir()
    d.save(data / "dict.txt")
    for split in ("train", "valid"):
        w = DatasetWriter(data / f"{split}.bin", np.uint16)
        w.add(ids)
        w.finalize(data / f"{split}.idx")
    (data / "preprocess.json").write_text(
        json.dumps({"task": "lm", "tokenizer": {"name": "space"}})
    )
    print(f"data: {len(ids):,} tokens of {source}, vocab {len(d)}", file=sys.stderr)
    return data


def raw_loop(data: Path, shape: dict, args: argparse.Namespace) -> float:
    """Bare PyTorch: the floor that rnnkit is held to. Returns tokens/s."""
    torch.manual_seed(1)
    task = load_task(data)
    vocab, h = len(task.dictionary), shape["hidden"]
    emb = torch.nn.Embedding(vocab, h)
    lstm = torch.nn.LSTM(h, h, shape["layers"], batch_first=True, dropout=shape["dropout"])
    out = torch.nn.Linear(h, vocab)
    drop = torch.nn.Dropout(shape["dropout"])
    params = [*emb.parameters(), *lstm.parameters(), *out.parameters()]
    opt = torch.optim.SGD(params, lr=1.0)
    rows = torch.from_numpy(task.load_stream("train").numpy().astype(np.int64))
    n = rows.numel() // args.batch_size
    rows = rows[: n * args.batch_size].view(args.batch_size, n)
    state, tokens, i = None, 0, 0
    t0 = time.perf_counter()
    for _ in range(args.updates):
        x, y = rows[:, i : i + args.bptt], rows[:, i + 1 : i + 1 + args.bptt]
        i = i + args.bptt if i + 2 * args.bptt + 1 < n else 0
        hs, state = lstm(drop(emb(x)), state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(out(drop(hs)).reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        tokens += y.numel()
    return tokens / (time.perf_counter() - t0)


def rnnkit_loop(data: Path, shape: dict, args: argparse.Namespace, save_dir: Path) -> float:
    """The real rnnkit training loop for ``--updates`` updates. Returns tokens/s."""
    cfg = resolve(
        TrainConfig,
        dict(
            batch_size=args.batch_size,
            bptt=args.bptt,
            lr=1.0,
            clip_norm=5.0,
            max_update=args.updates,
            log_interval=1e9,
            reset=True,
            seed=1,
        ),
    )
    run = build_run(cfg, load_task(data), shape["arch"], [], save_dir)
    t0 = time.perf_counter()
    keep_freed_memory()  # as `rnnkit train` does for its process
    fit(run)
    return args.updates * args.batch_size * args.bptt / (time.perf_counter() - t0)


def measure(side: str, data: Path, shape: dict, args: argparse.Namespace, save_dir: Path) -> tuple:
    """Tokens/s of ``side`` (raw or rnnkit) after 5 updates of warm-up, and this process's peak
    RSS (MiB)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    warm = argparse.Namespace(**{**vars(args), "updates": 5})
    if side == "raw":
        raw_loop(data, shape, warm)
        tps = raw_loop(data, shape, args)
    else:
        rnnkit_loop(data, shape, warm, save_dir.with_name(save_dir.name + "-warm"))
        tps = rnnkit_loop(data, shape, args, save_dir)
    return tps, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def isolated(*args: object) -> tuple:
    """:func:`measure` in a fresh spawned process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=SHAPES, default="small")
    p.add_argument("--updates", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = SHAPES[args.shape]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), 10_000, 300_000)
        raw, kit, rss = [], [], [0.0]
        for r in range(args.repeats):
            for side, out in (("raw", raw), ("rnnkit", kit)):
                tps, peak = isolated(side, data, shape, args, Path(tmp) / f"{side}{r}")
                out.append(tps)
                rss.append(peak)
            print(
                f"repeat {r + 1}: raw {raw[-1]:,.0f} tok/s, rnnkit {kit[-1]:,.0f} tok/s",
                file=sys.stderr,
            )
    r_med, k_med = statistics.median(raw), statistics.median(kit)
    print(
        f"shape {args.shape} ({shape['arch']}), batch {args.batch_size}, bptt {args.bptt}, "
        f"{args.updates} updates x {args.repeats}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus"
    )
    print(f"raw PyTorch loop: {r_med:,.0f} tokens/s (median)")
    print(f"rnnkit train:     {k_med:,.0f} tokens/s (median)")
    print(f"ratio rnnkit/raw: {k_med / r_med:.3f}")
    print(f"peak RSS (largest process): {max(rss):,.0f} MiB")


if __name__ == "__main__":
    main()
