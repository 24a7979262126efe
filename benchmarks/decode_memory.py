"""Peak memory of ``rnnkit generate`` beam 5 on the reversed-PTB decode set, and where it goes
(issue 16.5).

Two measurements, each in fresh processes (peak RSS only grows):

- **stages**: one process reports its peak RSS (``VmHWM`` of ``/proc/self/status``) after each
  stage of what ``rnnkit generate`` does: import torch; import rnnkit's generate path;
  ``torch.load`` of the checkpoint alone (then freed: the optimizer state is read too);
  ``rnnkit.load``; the first ``--buffer-size`` buffer decoded; the whole input;
- **commands**: the whole ``rnnkit generate --buffer-size 1000 --batch-size B`` command for each
  ``B`` of ``--batch-sizes`` (``--batch-size 1000`` decodes the buffer as one batch, as every
  buffer was decoded before issue 16.5): its peak RSS (the child's ``ru_maxrss``), wall time,
  and whether every batch size printed the same translations.

    python benchmarks/decode_memory.py --peers-dir /tmp/peers --threads 1

The model and input are the ones ``benchmarks/peers.py`` decodes (``rnnkit/ckpt_r1/
checkpoint_last.pt`` and ``data/rev.test1000.src`` under the peers dir), or ``--checkpoint`` /
``--input``. Peak RSS does not depend on the machine's load; the walls do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RNNKIT = Path(sys.executable).parent / "rnnkit"
SEARCH = ["--beam", "5", "--max-len-a", "1.2", "--max-len-b", "10"]


def peak_mib() -> float:
    """This process's peak RSS so far, MiB (VmHWM)."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kib / 1024


def stages_worker(args: argparse.Namespace) -> None:
    """Run the stages in this process; print one JSON object of (stage, peak MiB) pairs."""
    marks = [("start", peak_mib())]
    import torch

    torch.set_num_threads(args.threads)
    marks.append(("import torch", peak_mib()))
    import rnnkit_cli.generate  # noqa: F401  (what the command imports)
    from rnnkit.generation.search import SearchConfig
    from rnnkit.hub import load
    from rnnkit.tasks.inference import GenerateOptions, LinesRequest
    from rnnkit_cli.rawlines import read_batches

    marks.append(("import rnnkit generate", peak_mib()))
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    del state
    marks.append(("torch.load checkpoint (freed)", peak_mib()))
    model = load(args.checkpoint, "cpu")
    marks.append(("rnnkit.load", peak_mib()))
    search = SearchConfig(beam=5, max_len_a=1.2, max_len_b=10)
    options = GenerateOptions(search=search)
    lines = LinesRequest(batch_size=args.batch_size)
    with open(os.devnull, "w") as out:
        for n, batch in enumerate(read_batches(str(args.input), args.buffer_size)):
            model.generate_lines([batch], lines, options, out)
            if n == 0:
                marks.append((f"first buffer of {len(batch)} lines", peak_mib()))
    marks.append(("whole input", peak_mib()))
    print(json.dumps(marks))


def run_stages(args: argparse.Namespace, batch_size: int) -> list[tuple[str, float]]:
    cmd = [sys.executable, __file__, "--stages-worker", "--checkpoint", str(args.checkpoint),
           "--input", str(args.input), "--threads", str(args.threads), "--buffer-size",
           str(args.buffer_size), "--batch-size", str(batch_size)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [tuple(m) for m in json.loads(out.splitlines()[-1])]


def run_command(args: argparse.Namespace, batch_size: int) -> tuple[float, float, str]:
    """(peak RSS MiB, wall s, stdout) of the whole ``rnnkit generate`` command."""
    cmd = [str(args.rnnkit), "generate", "--path", str(args.checkpoint), "--input",
           str(args.input), *SEARCH, "--buffer-size", str(args.buffer_size), "--batch-size",
           str(batch_size), "--threads", str(args.threads)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"decode_memory: {' '.join(cmd)} failed ({proc.returncode})")
    return usage.ru_maxrss / 1024, wall, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"))
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--input", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--buffer-size", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64, help="the stages' --batch-size (64)")
    p.add_argument("--batch-sizes", default="1000,128,64", help="the commands' (1000,128,64)")
    p.add_argument("--rnnkit", type=Path, default=RNNKIT)
    p.add_argument("--stages-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.checkpoint = args.checkpoint or args.peers_dir / "rnnkit/ckpt_r1/checkpoint_last.pt"
    args.input = args.input or args.peers_dir / "data/rev.test1000.src"
    if args.stages_worker:
        return stages_worker(args)
    print(f"rnnkit generate beam 5, {args.input.name}, --buffer-size {args.buffer_size}, "
          f"{args.threads} thread(s); {time.strftime('%Y-%m-%d %H:%M')}\n")  # fmt: skip
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for batch_size in (sizes[0], args.batch_size):
        print(f"peak RSS by stage (--batch-size {batch_size}), MiB:")
        for stage, mib in run_stages(args, batch_size):
            print(f"  {stage:34s} {mib:7.0f}")
    print("\n| --batch-size | peak RSS, MiB | wall, s |\n| ---: | ---: | ---: |")
    outputs = {}
    for batch_size in sizes:
        rss, wall, outputs[batch_size] = run_command(args, batch_size)
        print(f"| {batch_size} | {rss:,.0f} | {wall:.1f} |", flush=True)
    same = len(set(outputs.values())) == 1
    print(f"\nsame translations for every --batch-size: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
