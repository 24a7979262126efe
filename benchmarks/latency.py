"""Latency of one line after the model is loaded: ``rnnkit generate --buffer-size 1`` against
OpenNMT-py 3.5.1, each answering a pipe line by line (issue 16.5).

Each toolkit runs as one long-lived process that reads source lines on its stdin and writes one
answer line per line, with its model loaded once:

- rnnkit: ``rnnkit generate --path CKPT -i - --buffer-size 1 --beam 5 --max-len-a 1.2
  --max-len-b 10 --threads T`` (the options ``benchmarks/peers.py`` decodes with);
- OpenNMT-py: ``onmt_translate`` loads its model once per call, so a line's latency after
  load comes from its Python API: a small driver, run by the peer's venv Python, builds
  ``onmt.inference_engine.InferenceEnginePY`` from ``onmt_translate``'s own options
  (``-beam_size 5 -n_best 1 -batch_size 1 -gpu -1``) and calls ``infer_list([line])`` per line
  — what ``onmt_translate`` does per batch, minus starting Python and loading the model. Timing
  ``onmt_translate`` on one-line files would mostly time its start and load.

The clock runs from writing a line (and flushing) until its answer line has been read, the same
pipe protocol for both. The first ``--warmup`` lines are not timed (the first answer also waits
for the model to load). Printed per toolkit: p50, p99 and mean milliseconds over ``--lines``
lines of the decode set, and rnnkit's p50 / p99 against the peer's. Threads: ``--threads`` for
both (``OMP_NUM_THREADS`` and ``torch.set_num_threads``). Timing is load-sensitive: run it on an
idle machine.

    python benchmarks/latency.py --peers-dir /tmp/peers --lines 200 --threads 1
    python benchmarks/latency.py --peers-dir /tmp/peers --quick      # 20 lines, a smoke test
    python benchmarks/latency.py --only rnnkit --rnnkit-args "--quantize int8"

Models: the round-1 models ``benchmarks/peers.py`` leaves in the peers dir
(``rnnkit/ckpt_r1/checkpoint_last.pt``, the newest ``onmt/run/model_r1_step_*.pt``), or
``--rnnkit-checkpoint`` / ``--onmt-model``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RNNKIT = Path(sys.executable).parent / "rnnkit"
SEARCH = ["--beam", "5", "--max-len-a", "1.2", "--max-len-b", "10"]

ONMT_DRIVER = '''\
"""Answer stdin line by line with OpenNMT-py's Python API (benchmarks/latency.py)."""
import sys

import torch
from onmt.inference_engine import InferenceEnginePY
from onmt.opts import translate_opts
from onmt.utils.parse import ArgumentParser

threads, args = int(sys.argv[1]), sys.argv[2:]
if threads:
    torch.set_num_threads(threads)
parser = ArgumentParser(description="latency driver")
translate_opts(parser)
opt = parser.parse_args(args)
ArgumentParser.validate_translate_opts(opt)  # as onmt/bin/translate.py does
ArgumentParser._get_all_transform_translate(opt)
ArgumentParser._validate_transforms_opts(opt)
ArgumentParser.validate_translate_opts_dynamic(opt)
engine = InferenceEnginePY(opt)
for line in sys.stdin:
    _, preds = engine.infer_list([line.rstrip("\\n")])
    sys.stdout.write(preds[0][0].replace("\\n", " ") + "\\n")
    sys.stdout.flush()
'''


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear between the nearest ranks."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def time_lines(cmd: list[str], env: dict[str, str], lines: list[str], warmup: int,
               log: Path) -> tuple[list[float], list[str]]:  # fmt: skip
    """Seconds from writing each line of ``lines`` to reading its answer, and the answers,
    after ``warmup`` untimed lines, through one process ``cmd`` (its stderr goes to ``log``)."""
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env=env, bufsize=0)  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        times, answers = [], []
        try:
            for n, line in enumerate(lines[:warmup] + lines):
                start = time.perf_counter()
                proc.stdin.write(line.encode() + b"\n")
                answer = proc.stdout.readline()
                if not answer:
                    sys.exit(f"latency: {cmd[0]} ended early; see {log}")
                if n >= warmup:
                    times.append(time.perf_counter() - start)
                    answers.append(answer.decode(errors="replace"))
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
    return times, answers


def commands(args: argparse.Namespace, driver: Path) -> dict[str, list[str]]:
    """The long-lived command of each toolkit in ``--only``; exits naming a missing file."""
    root = args.peers_dir
    ckpt = args.rnnkit_checkpoint or root / "rnnkit/ckpt_r1/checkpoint_last.pt"
    model = args.onmt_model or newest(root / "onmt/run", "model_r1_step_*.pt")
    python = root / "onmt/venv/bin/python"
    cmds = {
        "rnnkit": [str(args.rnnkit), "generate", "--path", str(ckpt), "-i", "-",
                   "--buffer-size", "1", *SEARCH, "--threads", str(args.threads),
                   *shlex.split(args.rnnkit_args)],
        "onmt": [str(python), str(driver), str(args.threads), "-model", str(model), "-src",
                 os.devnull, "-output", os.devnull, "-beam_size", "5", "-n_best", "1",
                 "-batch_size", "1", "-batch_type", "sents", "-gpu", "-1"],
    }  # fmt: skip
    needs = {"rnnkit": [args.rnnkit, ckpt], "onmt": [python, model]}
    for name in args.only:
        missing = [str(p) for p in needs[name] if not Path(p).exists()]
        if missing:
            sys.exit(f"latency: {name}: missing {', '.join(missing)}")
    return {name: cmds[name] for name in args.only}


def newest(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else folder / pattern


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"))
    p.add_argument("--lines", type=int, default=200, help="timed lines (200)")
    p.add_argument("--quick", action="store_true", help="20 timed lines, 2 warm-up")
    p.add_argument("--warmup", type=int, default=5, help="untimed lines first (5)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for both (1)")
    p.add_argument("--only", default="rnnkit,onmt", help="toolkits, comma-separated")
    p.add_argument("--input", type=Path, help="source lines (default: the decode set)")
    p.add_argument("--rnnkit", type=Path, default=RNNKIT, help="the rnnkit executable")
    p.add_argument("--rnnkit-checkpoint", type=Path)
    p.add_argument("--rnnkit-args", default="", help="more generate options: '--quantize int8'")
    p.add_argument("--onmt-model", type=Path)
    args = p.parse_args()
    args.only = [name for name in args.only.split(",") if name]
    if not set(args.only) <= {"rnnkit", "onmt"}:
        p.error("--only takes rnnkit and/or onmt")
    if args.quick:
        args.lines, args.warmup = 20, 2
    source = args.input or args.peers_dir / "data/rev.test1000.src"
    lines = source.read_text(encoding="utf-8").splitlines()[: args.lines]
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
    )  # fmt: skip  (OpenNMT-py's own checkpoints)
    results: dict[str, tuple[list[float], list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "onmt_driver.py"
        driver.write_text(ONMT_DRIVER)
        for name, cmd in commands(args, driver).items():
            log = Path(tmp) / f"{name}.log"
            try:
                results[name] = time_lines(cmd, env, lines, args.warmup, log)
            except BaseException:
                print(log.read_text()[-2000:], file=sys.stderr)
                raise
    print(f"one line after load, {len(lines)} lines of {source.name}, {args.threads} thread(s), "
          f"beam 5; {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    print("| | p50 ms | p99 ms | mean ms | answer words (mean) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (t, answers) in results.items():
        ms = [1000 * s for s in t]
        words = statistics.fmean(len(a.split()) for a in answers)
        print(f"| {name} | {percentile(ms, 0.5):.1f} | {percentile(ms, 0.99):.1f} | "
              f"{statistics.fmean(ms):.1f} | {words:.1f} |")  # fmt: skip
    if len(results) == 2:
        r, o = results["rnnkit"][0], results["onmt"][0]
        for q in (0.5, 0.99):
            ratio = percentile(o, q) / percentile(r, q)
            print(f"p{round(q * 100)}: OpenNMT-py's / rnnkit's = {ratio:.2f}x (> 1: rnnkit faster)")
    print("(answer lengths should be alike: a barely trained model runs to its length limit)")


if __name__ == "__main__":
    main()
