"""Start-up time of the ``rnnkit`` command line (issue 13, item 8): median wall time of each
command over ``--repeats`` runs, next to ``sacrebleu``'s own start and a bare ``import torch``.

Each command runs as ``python -c "from rnnkit_cli.main import main; main()" ARGS`` (what the
installed ``rnnkit`` script runs) from an empty folder, so ``--pythonpath DIR`` can time another
tree: DIR holds ``rnnkit`` and ``rnnkit_cli`` (links to a checkout's ``rnnkit/`` and ``cli/``),
which Python then finds before the installed package. ``score`` compares 10 lines;
``generate`` decodes one line with ``--checkpoint`` (default: a test fixture's tiny seq2seq).

    python benchmarks/cli_startup.py [--repeats 5] [--pythonpath /tmp/old13-path]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "old_checkpoints"
RUN_MAIN = "from rnnkit_cli.main import main; main()"


def commands(tmp: Path, checkpoint: Path) -> dict[str, tuple[list[str], str | None]]:
    """Name -> (argv, stdin) of every timed command."""
    hyp, ref = tmp / "hyp.txt", tmp / "ref.txt"
    hyp.write_text("".join(f"the cat number {i} sat on the mat\n" for i in range(10)))
    ref.write_text("".join(f"the cat number {i} sat on a mat\n" for i in range(10)))
    rnnkit = [sys.executable, "-c", RUN_MAIN]
    found = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "python -c 'import torch'": ([sys.executable, "-c", "import torch"], None),
        "rnnkit --help": ([*rnnkit, "--help"], None),
        "rnnkit --version": ([*rnnkit, "--version"], None),
        "rnnkit models": ([*rnnkit, "models"], None),
        "rnnkit score --sys h --ref r": ([*rnnkit, "score", "--sys", str(hyp), "--ref", str(ref)],
                                         None),
        "rnnkit generate --path CK --input - (1 line)": (
            [*rnnkit, "generate", "--path", str(checkpoint), "--input", "-", "--device", "cpu",
             "--threads", "1"], "a b c\n"),
    }  # fmt: skip
    sacrebleu = shutil.which("sacrebleu") or str(Path(sys.executable).with_name("sacrebleu"))
    if Path(sacrebleu).exists():
        found["sacrebleu r -i h"] = ([sacrebleu, str(ref), "-i", str(hyp)], None)
    return found


def median_seconds(
    argv: list[str], stdin: str | None, repeats: int, env: dict, cwd: Path
) -> float | None:
    """Median wall time of ``repeats`` runs (after one untimed run that warms the file cache);
    None if the command fails (``--version`` of a tree that lacks it)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=cwd)
        if i:
            times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            return None
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pythonpath", help="Folder with rnnkit/ and rnnkit_cli/ to time.")
    parser.add_argument("--checkpoint", type=Path, default=FIXTURES / "seq2seq_sutskever.pt")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with tempfile.TemporaryDirectory() as tmp:
        for name, (argv, stdin) in commands(Path(tmp), args.checkpoint.resolve()).items():
            seconds = median_seconds(argv, stdin, args.repeats, env, Path(tmp))
            shown = "  failed" if seconds is None else f"{seconds:7.3f} s"
            print(f"{shown}  {name}", flush=True)


if __name__ == "__main__":
    main()
