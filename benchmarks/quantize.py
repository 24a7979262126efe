"""int8 against fp32 decoding on the "reversed PTB" decode set (issue 16.3), in one run.

Decodes the same sentences with greedy and beam 5 (batches of 128, as ``rnnkit generate``) with
the fp32 model and with ``rnnkit.load(..., quantize="int8")``, alternating fp32 and int8
``--repeats`` times, and prints the median sentences/s of each, the int8/fp32 ratio (target:
>= 1.7x for both), the share of identical hypotheses and the BLEU of each against the reference
(the reversed source). ``--profile`` adds a torch.profiler table of beam 5 on a few sentences per
model: where decode time goes. ``--quick`` is a smoke run (tiny model, 64 sentences).

    python benchmarks/quantize.py --threads 2 [--checkpoint CKPT] [--profile]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import sacrebleu
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seq2seq_workload  # noqa: E402
from generate import decode, train  # noqa: E402

from rnnkit.hub import load  # noqa: E402
from rnnkit.tasks import load_task  # noqa: E402

QUICK_MODEL = {
    "encoder_embed_dim": 32, "encoder_hidden_size": 32,
    "decoder_embed_dim": 32, "decoder_hidden_size": 32,
}  # fmt: skip


def bleu(hypos: dict[int, list[int]], refs: dict[int, list[int]]) -> float:
    """Corpus BLEU of token-id hypotheses against token-id references (no tokenization)."""
    ids = sorted(hypos)
    sys_lines = [" ".join(map(str, hypos[i])) for i in ids]
    ref_lines = [" ".join(map(str, refs[i])) for i in ids]
    return sacrebleu.corpus_bleu(sys_lines, [ref_lines], tokenize="none").score


def profile(model, task, ids: list[int], label: str) -> None:
    """Top operators of beam 5 over ``ids``, by self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        decode(model, task, 5, 128, ids)
    print(f"--- profile, {label}, beam 5, {len(ids)} sentences")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--train-updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--sentences", type=int, default=1000, help="every k-th of the 1,000")
    p.add_argument("--repeats", type=int, default=3, help="fp32/int8 alternations per search")
    p.add_argument("--profile", action="store_true", help="torch.profiler tables of beam 5")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 64 sentences")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        seq2seq_workload.MODEL.update(QUICK_MODEL)  # what generate.train builds
        args.train_updates, args.sentences, args.repeats = 20, 64, 1
    with tempfile.TemporaryDirectory() as tmp:
        data = seq2seq_workload.make_workload(Path(tmp))
        ckpt = args.checkpoint or train(data, Path(tmp) / "model", args.train_updates)
        task = load_task(data)
        models = {"fp32": load(ckpt, "cpu"), "int8": load(ckpt, "cpu", quantize="int8")}
        _, tgt = task.datasets("valid")
        ids = list(range(0, 1000, max(1, 1000 // args.sentences)))
        refs = {i: tgt[i].tolist()[:-1] for i in ids}  # without </s>
        cpu = platform.processor() or platform.machine()
        print(f"reversed PTB decode set, {len(ids)} sentences, batch 128, "
              f"{torch.get_num_threads()} threads, {cpu}, engine "
              f"{torch.backends.quantized.engine}")  # fmt: skip
        print("beam  fp32 sent/s  int8 sent/s  int8/fp32  same hypos  BLEU fp32  BLEU int8")
        for beam in (1, 5):
            speed: dict[str, list[float]] = {"fp32": [], "int8": []}
            best = {}
            for _ in range(args.repeats):  # alternated, so drift hits both alike
                for name, model in models.items():
                    sps, _, best[name] = decode(model, task, beam, 128, ids)
                    speed[name].append(sps)
            fp32, int8 = (statistics.median(speed[n]) for n in ("fp32", "int8"))
            same = sum(best["fp32"][i] == best["int8"][i] for i in ids) / len(ids)
            print(f"{beam:>4}  {fp32:11.1f}  {int8:11.1f}  {int8 / fp32:8.2f}x  "
                  f"{same:10.1%}  {bleu(best['fp32'], refs):9.2f}  "
                  f"{bleu(best['int8'], refs):9.2f}", flush=True)  # fmt: skip
        if args.profile:
            few = ids[: min(len(ids), 32)]
            for name, model in models.items():
                profile(model, task, few, name)


if __name__ == "__main__":
    main()
