"""Benchmark the peak RSS of ``rnnkit preprocess --task lm --tokenizer sentencepiece``.

Each run is a fresh process on a synthetic corpus of Zipf-distributed pseudo-words (a 50,000-word
vocabulary of letter strings, frequent words short, 10-30 words a line, written once per size).
The compared runs alternate within each corpus: today's code from another source tree
(``--old-src``, e.g. from ``git archive HEAD``), this tree with the default
``--spm-sample-lines``, and this tree with each ``--sample-lines`` value. Peak RSS is the largest
resident set of the command, from ``os.wait4`` (``--workers 1``: no pool processes). Logs go to
stderr; the Markdown table of results goes to stdout.

    python benchmarks/preprocess_spm_rss.py                                # 1M and 4M lines
    python benchmarks/preprocess_spm_rss.py --lines 20000 --sample-lines 5000   # a smoke run
    mkdir -p /tmp/old/src && git archive HEAD rnnkit cli | tar -x -C /tmp/old/src \\
      && mv /tmp/old/src/cli /tmp/old/src/rnnkit_cli
    python benchmarks/preprocess_spm_rss.py --old-src /tmp/old/src         # with today's code
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

LETTERS = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pseudo_words(n: int) -> np.ndarray:
    """``n`` distinct letter strings, shortest first (rank r spelled in bijective base 26)."""
    words = []
    for r in range(1, n + 1):
        letters = []
        while r:
            r, digit = divmod(r - 1, 26)
            letters.append(LETTERS[digit])
        words.append("".join(reversed(letters)))
    return np.array(words)


def write_synthetic(path: Path, nlines: int, vocab: int = 50_000, seed: int = 0) -> None:
    """``nlines`` lines of 10-30 words drawn from a Zipf law (exponent 1.1) over ``vocab`` words."""
    rng = np.random.default_rng(seed)
    words = pseudo_words(vocab)
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** 1.1)
    cdf /= cdf[-1]
    block = 100_000
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, nlines, block):
            n = min(block, nlines - start)
            lengths = rng.integers(10, 31, size=n)
            ids = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), vocab - 1)
            tokens = words[ids].tolist()
            ends = np.cumsum(lengths).tolist()
            lines, begin = [], 0
            for end in ends:
                lines.append(" ".join(tokens[begin:end]))
                begin = end
            f.write("\n".join(lines) + "\n")


def run_preprocess(train: Path, destdir: Path, args: list[str], old_src: str | None) -> dict:
    """One ``rnnkit preprocess`` process; its wall time, peak RSS and what spm trained on."""
    cmd = [sys.executable, "-m", "rnnkit_cli", "preprocess", "--task", "lm"]
    cmd += ["--tokenizer", "sentencepiece", "--spm-vocab-size", "8000"]
    cmd += ["--trainpref", str(train), "--destdir", str(destdir), "--force", *args]
    env = dict(os.environ)
    if old_src:
        env["PYTHONPATH"] = old_src  # ahead of the editable install's finder
    start = time.perf_counter()
    # cwd away from the repository: python -m puts it first on sys.path, before PYTHONPATH.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=destdir.parent
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr}")
    manifest = json.loads((destdir / "preprocess.json").read_text())
    if ("spm_sample_lines" in manifest["options"]) == bool(old_src):  # the tree that ran
        raise SystemExit(f"{' '.join(cmd)}: ran the wrong source tree (PYTHONPATH={old_src})")
    return {
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "lines": manifest["splits"]["train"]["lines"],
        "sampled": manifest["tokenizer"].get("sample_lines"),
        "dict": manifest["dictionaries"]["dict.txt"],
    }


def variants(args: argparse.Namespace) -> list[tuple[str, list[str], str | None]]:
    """``(label, extra options, old source tree or None)`` for each run on a corpus."""
    out = [("HEAD (today)", [], args.old_src)] if args.old_src else []
    if not args.no_default:
        out.append(("new, default", [], None))
    for s in (x for x in args.sample_lines.split(",") if x):
        out.append((f"new, --spm-sample-lines {int(s):,}", ["--spm-sample-lines", s], None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="1000000,4000000", help="corpus sizes, a,b,…")
    parser.add_argument("--sample-lines", default="1000000", help="--spm-sample-lines values")
    parser.add_argument("--old-src", help="source tree with today's rnnkit and rnnkit_cli")
    parser.add_argument("--no-default", action="store_true", help="skip the default run")
    parser.add_argument("--workdir", help="keep corpora here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rnnkit-spm-rss-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        print("| corpus | code | spm trained on | dict | wall s | peak RSS MiB |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for n in (int(x) for x in args.lines.split(",") if x):
            path = work / f"zipf50k-{n}.txt"
            if not path.is_file():
                log(f"writing {path} ({n:,} lines)")
                write_synthetic(path, n)
            size = f"{n:,} lines, {path.stat().st_size / 2**20:,.0f} MiB"
            for label, extra, old in variants(args):
                log(f"preprocess {size}: {label}")
                r = run_preprocess(path, Path(tmp) / "out", extra, old)
                trained = f"{r['sampled'] or r['lines']:,} lines"
                print(
                    f"| {size} | {label} | {trained} | {r['dict']:,} | {r['wall_s']:.1f} "
                    f"| {r['peak_rss_mib']:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
