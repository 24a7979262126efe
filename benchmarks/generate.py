"""Decoding speed of rnnkit's batched beam search on the "reversed PTB" decode set.

Decodes the first 1,000 lines of ptb.valid.txt (see :mod:`seq2seq_workload`) with greedy
(``--beam 1``) and beam 5, with batches of 128 sentences and one sentence at a time, through the
library path ``rnnkit generate`` takes (:meth:`TranslationTask.generate_split`), and prints
sentences/s, output tokens/s and the speed-up of the batched search over sentence-at-a-time.
Every configuration decodes the same model with the same search options (``--max-len-a 1.2
--max-len-b 10``: the target is as long as the source). The model is ``--checkpoint`` or one
trained here for ``--train-updates`` updates with the real training loop (so hypotheses end
where a trained model ends them, not at the length limit).

    python benchmarks/generate.py --threads 2 [--amp bf16]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seq2seq_workload import MODEL, make_workload  # noqa: E402

from rnnkit.config import resolve  # noqa: E402
from rnnkit.generation.search import SearchConfig  # noqa: E402
from rnnkit.hub import load  # noqa: E402
from rnnkit.tasks import load_task  # noqa: E402
from rnnkit.training.config import TrainConfig  # noqa: E402
from rnnkit.training.loop import build_run, fit  # noqa: E402
from rnnkit.training.precision import Precision  # noqa: E402


def train(data: Path, save_dir: Path, updates: int) -> Path:
    cfg = resolve(TrainConfig, dict(batch_size=64, optimizer="adam", lr=3e-3, seed=1,
                                    max_update=updates, log_interval=1e9, clip_norm=1.0,
                                    no_epoch_checkpoints=True))  # fmt: skip
    fit(build_run(cfg, load_task(data), "attention_seq2seq", [MODEL], save_dir))
    return save_dir / "checkpoint_last.pt"


def decode(
    model, task, beam: int, batch: int, ids: list[int]
) -> tuple[float, float, dict[int, list[int]]]:
    """(sentences/s, output tokens/s, best hypothesis per sentence) decoding sentences ``ids`` of
    the valid split, sorted by length into batches of ``batch`` as ``rnnkit generate`` does."""
    search = SearchConfig(beam=beam, max_len_a=1.2, max_len_b=10)
    src, _ = task.datasets("valid")
    ids = sorted(ids, key=lambda i: int(src.sizes[i]))
    found, t0 = {}, time.perf_counter()
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        hypos = task.search(model.model, [src[i].tolist() for i in chunk], search, model.device)
        found.update((i, h[0].tokens) for i, h in zip(chunk, hypos, strict=True) if h)
    elapsed = time.perf_counter() - t0
    tokens = sum(len(t) + 1 for t in found.values())  # each with its eos
    best = {i: found[i].tolist() if i in found else [] for i in ids}
    return len(ids) / elapsed, tokens / elapsed, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--train-updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--single-limit", type=int, default=1000,
                   help="sentences decoded (every k-th of the 1,000 when fewer)")  # fmt: skip
    p.add_argument("--amp", choices=["none", "bf16"], default="none",
                   help="also decode batch 128 under bf16 autocast (rnnkit generate --amp bf16) "
                        "and count its hypotheses that differ from fp32's")  # fmt: skip
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_workload(Path(tmp))
        ckpt = args.checkpoint or train(data, Path(tmp) / "model", args.train_updates)
        model, task = load(ckpt, "cpu"), load_task(data)
        cpu = platform.processor() or platform.machine()
        print(f"reversed PTB decode set, attention_seq2seq 2x256, {torch.get_num_threads()} "
              f"threads, {cpu}")  # fmt: skip
        print("beam  batch  sentences  sent/s  tok/s")
        results = {}
        # A smaller --single-limit takes every k-th sentence, so lengths stay representative;
        # the batched search decodes the same sentences for the speed-up.
        stride = max(1, 1000 // args.single_limit)
        for beam in (1, 5):
            for batch in (128, 1):
                ids = list(range(0, 1000, stride))
                sps, tps, best = decode(model, task, beam, batch, ids)
                results[beam, batch] = sps, ids, best
                print(f"{beam:>4}  {batch:>5}  {len(ids):>9}  {sps:6.1f}  {tps:7.1f}", flush=True)
        for beam in (1, 5):
            print(f"beam {beam}: batched/one-at-a-time speed-up "
                  f"{results[beam, 128][0] / results[beam, 1][0]:.1f}x")  # fmt: skip
        if args.amp == "bf16":
            print("bf16 autocast, batch 128:")
            for beam in (1, 5):
                fp32_sps, ids, fp32 = results[beam, 128]
                with Precision("bf16", model.device).autocast():
                    sps, tps, bf16 = decode(model, task, beam, 128, ids)
                differ = sum(fp32[i] != bf16[i] for i in ids)
                print(f"beam {beam}: {sps:6.1f} sent/s {tps:7.1f} tok/s, "
                      f"{sps / fp32_sps:.2f}x fp32; {differ} of {len(ids)} "
                      "hypotheses differ from fp32's")  # fmt: skip


if __name__ == "__main__":
    main()
