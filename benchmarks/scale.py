"""Memory and speed of language-model data read from the memory map, against the whole split
loaded into memory as rnnkit did before (``RNNKIT_BENCH_LM_IN_RAM=1``, benchmarks only).

(a) Builds synthetic lm corpora (default 10M and 100M tokens; a 10,000-word vocabulary with
Zipf-distributed words, P(rank k) ∝ 1/k, lines of 1-40 words; one line holding every word, so
that each corpus has the same dictionary and so the same model), preprocessed once with
``rnnkit preprocess --task lm --workers 2`` into ``--cache``; says how long that took.

(b) Peak memory of ``rnnkit train --task lm`` (``--arch lstm_lm_zaremba_small``, ``--max-update
50``, ``--threads 1``) on each corpus with 1 and 2 workers (``--nproc-per-node 2``), for both
data paths, each run a fresh process. The process tree is polled every 20 ms: RSS and PSS
(``/proc/PID/smaps_rollup``; shared pages divided among the processes that map them) summed
over the workers, and over the whole tree (the launcher included); the one-worker peak RSS is
also exact from ``os.wait4``.

(c) Tokens/s of the memory-mapped path against the in-memory path on PTB
(``../shared/data/ptb``; skipped with a message where absent): one process, the same model,
the two paths timed in turn ``--speed-repeats`` times over ``--speed-updates`` updates each
(the real update, ``rnnkit.training.loop.train_update``), medians and their ratio.

    .venv/bin/python benchmarks/scale.py [--cache /tmp/rnnkit-scale] [--tokens 10M,100M]
    .venv/bin/python benchmarks/scale.py --dry-run      # tiny corpora, a few updates: smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RNNKIT = str(Path(sys.executable).parent / "rnnkit")
IN_RAM_ENV = "RNNKIT_BENCH_LM_IN_RAM"  # rnnkit.tasks.lm.IN_RAM_ENV
PATHS = {"mmap": {}, "in-RAM": {IN_RAM_ENV: "1"}}
PTB = REPO / ".." / "shared" / "data" / "ptb"
TRAIN = ["--arch", "lstm_lm_zaremba_small", "--threads", "1", "--no-epoch-checkpoints",
         "--max-update"]  # fmt: skip


def count(text: str) -> int:
    """``10M`` → 10,000,000; ``250k`` → 250,000."""
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1].lower(), 1)
    return int(float(text.rstrip("kKmMgG")) * scale)


def write_text(path: Path, tokens: int, vocab: int, seed: int) -> None:
    """``tokens`` Zipf-distributed words ``w0`` … in lines of 1-40 words, every word on line 1."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    zipf = 1.0 / np.arange(1, vocab + 1)  # P(rank k) ∝ 1/k
    zipf /= zipf.sum()
    with open(path, "w", encoding="utf-8") as f:
        f.write(" ".join(words) + "\n")
        left = tokens - vocab
        while left > 0:
            n = min(left, 1 << 20)
            ids = rng.choice(vocab, n, p=zipf)
            ends = np.cumsum(rng.integers(1, 41, n // 10 + 2))
            seps = np.full(n, " ", dtype=object)
            seps[ends[ends <= n] - 1] = "\n"
            seps[-1] = "\n"
            out = np.empty(2 * n, dtype=object)
            out[0::2], out[1::2] = words[ids], seps
            f.write("".join(out.tolist()))
            left -= n


def build(cache: Path, name: str, train: Path, valid: Path) -> tuple[Path, float]:
    """Preprocess ``train`` (and ``valid``) into ``cache/name`` once; (dir, seconds or 0)."""
    dest = cache / name
    if (dest / "preprocess.json").is_file():
        return dest, 0.0
    t0 = time.perf_counter()
    subprocess.run([RNNKIT, "preprocess", "--task", "lm", "--workers", "2", "--trainpref",
                    str(train), "--validpref", str(valid), "--destdir", str(dest), "--force"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return dest, time.perf_counter() - t0


def synthetic(cache: Path, tokens: int, vocab: int) -> tuple[Path, float, float]:
    """The data dir of a ``tokens``-token corpus: (dir, text seconds, preprocess seconds)."""
    cache.mkdir(parents=True, exist_ok=True)
    valid = cache / f"valid-{vocab}.txt"
    if not valid.is_file():
        write_text(valid, 100_000, vocab, seed=1)
    name = f"lm-{tokens}-{vocab}"
    if (cache / name / "preprocess.json").is_file():
        return cache / name, 0.0, 0.0
    text = cache / f"{name}.txt"
    t0 = time.perf_counter()
    write_text(text, tokens, vocab, seed=0)
    made = time.perf_counter() - t0
    dest, seconds = build(cache, name, text, valid)
    text.unlink()
    return dest, made, seconds


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(pid))
    return kids


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB; zeros once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        fields = dict(line.split(":", 1) for line in lines)
    except (OSError, ValueError):
        return 0, 0
    return int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0])


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``cmd``; peak KiB of the workers' summed RSS and PSS, the tree's, and wait4's."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=log, text=True)  # fmt: skip
        peak = {"workers_rss": 0, "workers_pss": 0, "tree_rss": 0, "tree_pss": 0}
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            kids = _children()
            tree, stack = [], [proc.pid]
            while stack:
                tree.append(stack.pop())
                stack += kids.get(tree[-1], [])
            mem = {p: _memory(p) for p in tree}
            # The workers: the leaves of the tree (the command itself when it has no children).
            workers = [p for p in tree if not kids.get(p)]
            for key, pids in (("workers", workers), ("tree", tree)):
                peak[f"{key}_rss"] = max(peak[f"{key}_rss"], sum(mem[p][0] for p in pids))
                peak[f"{key}_pss"] = max(peak[f"{key}_pss"], sum(mem[p][1] for p in pids))
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read()[-3000:]}")
    return {**peak, "wait4_rss": usage.ru_maxrss}


def memory_table(args: argparse.Namespace, corpora: list[tuple[str, Path]]) -> None:
    print("\n| corpus | workers | data path | workers' peak RSS MiB | workers' peak PSS MiB "
          "| tree peak PSS MiB | wait4 max RSS MiB |")  # fmt: skip
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for label, data in corpora:
        for workers in args.workers:
            for path, env in PATHS.items():
                with tempfile.TemporaryDirectory() as save:
                    cmd = [RNNKIT, "train", str(data), *TRAIN, str(args.updates), "--save-dir",
                           save]  # fmt: skip
                    if workers > 1:
                        cmd += ["--nproc-per-node", str(workers)]
                    m = measure(cmd, env)
                mib = {k: v / 1024 for k, v in m.items()}
                print(f"| {label} | {workers} | {path} | {mib['workers_rss']:,.0f} "
                      f"| {mib['workers_pss']:,.0f} | {mib['tree_pss']:,.0f} "
                      f"| {mib['wait4_rss']:,.0f} |", flush=True)  # fmt: skip


def speed_worker(data: str, updates: int, repeats: int, warmup: int) -> None:
    """In this process: the two data paths timed in turn; prints the medians and the ratio."""
    import torch

    from rnnkit.config import resolve
    from rnnkit.tasks import load_task
    from rnnkit.training.config import TrainConfig
    from rnnkit.training.loop import build_run, train_update

    torch.set_num_threads(1)
    cfg = resolve(TrainConfig, {"lr": 1.0, "clip_norm": 5.0, "seed": 1, "threads": 1})
    speeds: dict[str, list[float]] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory() as save:
        run = build_run(cfg, load_task(data), "lstm_lm_zaremba_small", [{}], Path(save))
        for _ in range(repeats):
            for path, env in PATHS.items():
                os.environ.pop(IN_RAM_ENV, None)
                os.environ.update(env)
                itr = run.task.train_iterator(cfg, run.model, run.device, run.data_rng)
                windows = iter(itr)
                for _ in range(warmup):
                    train_update(run, [next(windows)], itr)
                t0, tokens = time.perf_counter(), 0.0
                for _ in range(updates):
                    tokens += train_update(run, [next(windows)], itr)[1]
                speeds[path].append(tokens / (time.perf_counter() - t0))
    med = {p: statistics.median(v) for p, v in speeds.items()}
    print("\n| data path | tokens/s (median) | runs |")
    print("| --- | ---: | --- |")
    for p, v in speeds.items():
        print(f"| {p} | {med[p]:,.0f} | {', '.join(f'{s:,.0f}' for s in v)} |")
    print(f"\nmmap / in-RAM: {med['mmap'] / med['in-RAM']:.3f} (goal >= 0.95)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "rnnkit-scale")
    p.add_argument("--tokens", default="10M,100M", help="synthetic corpus sizes, e.g. 10M,100M")
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--updates", type=int, default=50)
    p.add_argument("--speed-updates", type=int, default=60)
    p.add_argument("--speed-repeats", type=int, default=5)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="tiny corpora and runs (smoke test)")
    p.add_argument("--speed-worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dry_run:
        args.tokens, args.vocab, args.updates = "60k,120k", 500, 3
        args.speed_updates, args.speed_repeats = 3, 1
        args.cache = args.cache.with_name(args.cache.name + "-dry")
    if args.speed_worker:
        return speed_worker(args.speed_worker, args.speed_updates, args.speed_repeats, 3)
    args.workers = [int(w) for w in args.workers.split(",")]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")  # fmt: skip
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} | {cpu} | {os.cpu_count()} CPUs | "
        f"load {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_memory:
        corpora = []
        for size in args.tokens.split(","):
            data, made, seconds = synthetic(args.cache, count(size), args.vocab)
            built = f"text {made:.0f} s, preprocess {seconds:.0f} s" if seconds else "cached"
            print(f"corpus {size}: {data} ({built})", flush=True)
            corpora.append((f"{size} tokens", data))
        memory_table(args, corpora)
    if not args.skip_speed:
        if not (PTB / "ptb.train.txt").is_file():
            print(f"\nPTB not found at {PTB.resolve()}: tokens/s comparison skipped")
            return
        data, _ = build(args.cache, "ptb", PTB / "ptb.train.txt", PTB / "ptb.valid.txt")
        subprocess.run([sys.executable, __file__, "--speed-worker", str(data),
                        "--speed-updates", str(args.speed_updates), "--speed-repeats",
                        str(args.speed_repeats)], check=True)  # fmt: skip


if __name__ == "__main__":
    main()
