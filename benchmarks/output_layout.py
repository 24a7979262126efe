"""Decoding with the output layer's inference layout (a contiguous Wᵀ for few-row products,
:mod:`rnnkit.modules.inference_linear`) against ``nn.Linear``'s own, in one run.

Decodes the "reversed PTB" decode set (as ``benchmarks/generate.py``: the same model, search
options and batching) with greedy and beam 5, one sentence at a time (5 rows a step at beam 5:
the latency case) and in batches of 128 (640 rows: the layout is not used there, so the ratio
should stay at 1), alternating the two layouts ``--repeats`` times, and prints the median
sentences/s of each, the ratio, and whether the hypotheses are identical.

    python benchmarks/output_layout.py --threads 2 [--checkpoint CKPT] [--single-limit 200]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import decode, train  # noqa: E402
from seq2seq_workload import make_workload  # noqa: E402

from rnnkit.hub import load  # noqa: E402
from rnnkit.modules.inference_linear import use_inference_layout, use_plain_layout  # noqa: E402
from rnnkit.tasks import load_task  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--train-updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="alternations of the two layouts (2)")
    p.add_argument("--single-limit", type=int, default=200,
                   help="sentences decoded one at a time (every k-th of the 1,000)")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_workload(Path(tmp))
        ckpt = args.checkpoint or train(data, Path(tmp) / "model", args.train_updates)
        model, task = load(ckpt, "cpu"), load_task(data)
        cpu = platform.processor() or platform.machine()
        print(f"reversed PTB decode set, {torch.get_num_threads()} threads, {cpu}")
        print("beam  batch  sentences  nn.Linear sent/s  inference layout sent/s  ratio  same")
        stride = max(1, 1000 // args.single_limit)
        for beam in (1, 5):
            for batch, ids in ((1, list(range(0, 1000, stride))), (128, list(range(1000)))):
                speeds: dict[str, list[float]] = {"plain": [], "fast": []}
                outputs = {}
                for _ in range(args.repeats):
                    for layout in ("plain", "fast"):
                        if layout == "plain":
                            use_plain_layout(model.model)
                        else:
                            use_inference_layout(model.model)
                        sps, _, best = decode(model, task, beam, batch, ids)
                        speeds[layout].append(sps)
                        outputs[layout] = best
                plain, fast = (statistics.median(speeds[k]) for k in ("plain", "fast"))
                same = outputs["plain"] == outputs["fast"]
                print(f"{beam:>4}  {batch:>5}  {len(ids):>9}  {plain:16.1f}  {fast:23.1f}  "
                      f"{fast / plain:5.2f}  {'yes' if same else 'NO'}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
