"""Benchmark ``rnnkit preprocess --task lm``: lines/s, tokens/s and peak RSS per run.

Each run is a fresh ``rnnkit`` process (so times include its start-up, about a second of
importing torch), binarizing PTB train and synthetic files of 1M and 4M lines with
``--workers 1`` and ``--workers 2``. Peak RSS is the largest resident set of any process of the
run (the command or one of its pool workers), from ``os.wait4``'s rusage. The synthetic corpus
has a 10,000-word Zipf vocabulary and 1-24 words a line, like PTB. Logs go to stderr; the
Markdown table of results goes to stdout.

    python benchmarks/preprocess.py                 # PTB + 1M + 4M lines, workers 1 and 2
    python benchmarks/preprocess.py --lines 100000  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PTB_TRAIN = REPO / ".." / "shared" / "data" / "ptb" / "ptb.train.txt"
RNNKIT = Path(sys.executable).parent / "rnnkit"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_synthetic(path: Path, nlines: int, seed: int = 0, block: int = 100_000) -> None:
    """``nlines`` lines of 1-24 words drawn from a Zipf law over 10,000 word types."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(10_000)])
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, nlines, block):
            n = min(block, nlines - start)
            lengths = rng.integers(1, 25, size=n)
            ids = np.minimum(rng.zipf(1.2, size=int(lengths.sum())) - 1, len(words) - 1)
            tokens = words[ids].tolist()
            ends = np.cumsum(lengths).tolist()
            begin = 0
            lines = []
            for end in ends:
                lines.append(" ".join(tokens[begin:end]))
                begin = end
            f.write("\n".join(lines) + "\n")


def run_preprocess(train: Path, destdir: Path, workers: int) -> dict:
    """Run the installed command once; return wall time, peak RSS and the manifest's counts."""
    cmd = [str(RNNKIT), "preprocess", "--task", "lm", "--trainpref", str(train)]
    cmd += ["--destdir", str(destdir), "--workers", str(workers), "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr}")
    train_stats = json.loads((destdir / "preprocess.json").read_text())["splits"]["train"]
    return {
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "lines": train_stats["lines"],
        "tokens": train_stats["outputs"]["train"]["tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="1000000,4000000", help="synthetic sizes, a,b,…")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--no-ptb", action="store_true", help="skip PTB train")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-") as tmp:
        corpora = [] if args.no_ptb or not PTB_TRAIN.is_file() else [("PTB train", PTB_TRAIN)]
        for n in (int(x) for x in args.lines.split(",") if x):
            path = Path(tmp) / f"synthetic-{n}.txt"
            log(f"writing {path} ({n:,} lines)")
            write_synthetic(path, n)
            corpora.append((f"synthetic {n:,} lines", path))
        print("| corpus | workers | lines | tokens | wall s | lines/s | tokens/s | peak RSS MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, path in corpora:
            for workers in (int(w) for w in args.workers.split(",")):
                log(f"preprocess {name} --workers {workers}")
                r = run_preprocess(path, Path(tmp) / "out", workers)
                print(
                    f"| {name} | {workers} | {r['lines']:,} | {r['tokens']:,} | {r['wall_s']:.1f} "
                    f"| {r['lines'] / r['wall_s']:,.0f} | {r['tokens'] / r['wall_s']:,.0f} "
                    f"| {r['peak_rss_mb']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
