"""Sampling speed of a char model: generated tokens/s, and proof that a token costs O(1).

The model is the ``char_rnn`` preset (random weights: speed does not depend on them) over a
~70-character vocabulary. Every timing goes through ``sample_tokens`` (generation/sampling.py),
the path ``rnnkit sample`` uses: the prime is warmed in one forward call, then each token is one
single-step forward with the carried state. The time to the first token (prime warm-up plus one
choice) is reported apart from the per-token time of the rest, in two sweeps: output length at a
fixed prime, and prime length at a fixed output. A ratio of per-token times (longest / shortest)
near 1.0 is the proof that neither length makes a token dearer. A naive baseline in the same run
re-runs the whole prefix for every new token, to show what carrying the state buys. Each point is
the median of ``--repeats`` runs, the points of a sweep taken in turn. ``--no-mkldnn`` swaps
oneDNN's LSTM for torch's own kernel: on one thread at batch 1 the oneDNN call cost more per step
here, and its cost varied between runs and within a process, not with the lengths of a call.

    python benchmarks/sample.py            # then again with --no-mkldnn
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import string
import time
from collections.abc import Sequence

import torch

from rnnkit.dictionary import Dictionary
from rnnkit.generation.sampling import choose_token, sample_text, sample_tokens
from rnnkit.models import resolve_arch
from rnnkit.tokenizers import CharTokenizer

CHARS = string.ascii_letters + string.digits + " .,;:!?'-"  # 71 characters + 4 specials


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (the platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_model(args: argparse.Namespace) -> tuple[torch.nn.Module, Dictionary]:
    """A ``char_rnn`` model (with any shape flags applied) in eval mode, and its dictionary."""
    d = Dictionary()
    for c in CHARS:
        d.add_symbol(c)
    d.finalize()
    flags = dict(hidden_size=args.hidden_size, embed_dim=args.embed_dim, num_layers=args.num_layers)
    cls, cfg = resolve_arch(args.arch, {k: v for k, v in flags.items() if v is not None})
    torch.manual_seed(0)
    return cls.build(cfg, d).eval(), d


def random_prime(d: Dictionary, n: int, gen: torch.Generator) -> list[int]:
    """``</s>`` + ``n - 1`` random character ids: the shape of an encoded prime, ``n`` ids long."""
    ids = torch.randint(d.nspecial, d.nspecial + len(CHARS), (n - 1,), generator=gen)
    return [d.eos_index, *ids.tolist()]


def time_stateful(model: torch.nn.Module, prime: Sequence[int], length: int) -> tuple[float, float]:
    """One ``sample_tokens`` run: (seconds to the first token, seconds per later token)."""
    gen = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    tokens = sample_tokens(model, prime, length, generator=gen)
    next(tokens)  # the prime's forward call + the first choice
    t1 = time.perf_counter()
    for _ in tokens:  # length - 1 steps of one forward each
        pass
    t2 = time.perf_counter()
    return t1 - t0, (t2 - t1) / (length - 1)


def time_naive(model: torch.nn.Module, prime: Sequence[int], length: int) -> list[float]:
    """Seconds for each token when the whole prefix is re-run from a zero state every time."""
    gen = torch.Generator().manual_seed(1)
    ids = list(prime)
    times = []
    with torch.inference_mode():
        for _ in range(length):
            t0 = time.perf_counter()
            logits, _ = model(torch.tensor([ids]))  # (1, T, V): T grows by one per token
            ids.append(choose_token(logits[0, -1], generator=gen))
            times.append(time.perf_counter() - t0)
    return times


def interleaved_points(
    model: torch.nn.Module, points: Sequence[tuple[list[int], int]], repeats: int
) -> list[tuple[float, float]]:
    """Median (first-token s, per-token s) of each (prime, length) point over ``repeats`` rounds.

    Rounds visit every point in turn (A, B, C, A, B, C, ...) so that a slow spell from other load
    on the machine hits all points alike instead of skewing the ratio between them.
    """
    runs: list[list[tuple[float, float]]] = [[] for _ in points]
    for _ in range(repeats):
        for i, (prime, length) in enumerate(points):
            runs[i].append(time_stateful(model, prime, length))
    return [
        (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for rs in runs
    ]


def sweep(
    name: str,
    points: Sequence[tuple[int, int]],
    model: torch.nn.Module,
    d: Dictionary,
    repeats: int,
) -> None:
    """Print one table over (prime length, output length) points and the per-token ratio."""
    runs = [(random_prime(d, p, torch.Generator().manual_seed(p)), n) for p, n in points]
    results = interleaved_points(model, runs, repeats)
    print(f"\n{name}")
    print(f"{'prime':>7} {'output':>7} {'first token ms':>15} {'µs/token':>9} {'tokens/s':>9}")
    for (prime_len, length), (first, step) in zip(points, results, strict=True):
        print(f"{prime_len:>7,} {length:>7,} {first * 1e3:>15.1f} {step * 1e6:>9.0f} "
              f"{1 / step:>9,.0f}")  # fmt: skip
    steps = [step for _, step in results]
    print(f"per-token ratio longest/shortest: {steps[-1] / steps[0]:.3f}")


def naive_comparison(
    model: torch.nn.Module, d: Dictionary, prime_len: int, length: int, repeats: int
) -> None:
    """Print the naive baseline against the stateful path on the same prime and output length.

    Naive and stateful runs alternate, ``repeats`` of each; medians are compared.
    """
    prime = random_prime(d, prime_len, torch.Generator().manual_seed(prime_len))
    naive_runs, steps = [], []
    for _ in range(repeats):
        naive_runs.append(time_naive(model, prime, length))
        steps.append(time_stateful(model, prime, length)[1])
    naive = min(naive_runs, key=sum)  # for the first/last split; the mean below is the median
    mean = statistics.median(sum(r) / length for r in naive_runs)
    step = statistics.median(steps)
    tenth = max(1, length // 10)
    print(f"\nnaive baseline (re-run the prefix per token), prime {prime_len}, output {length}")
    first, last = statistics.mean(naive[:tenth]), statistics.mean(naive[-tenth:])
    print(f"naive:    {mean * 1e6:,.0f} µs/token on average ({1 / mean:,.0f} tokens/s); "
          f"fastest run: first {tenth} tokens {first * 1e6:,.0f} µs/token, "
          f"last {tenth} {last * 1e6:,.0f} µs/token")  # fmt: skip
    print(f"stateful: {step * 1e6:,.0f} µs/token ({1 / step:,.0f} tokens/s)")
    print(f"naive is {mean / step:.1f}x slower per token over {length} tokens")


def text_end_to_end(model: torch.nn.Module, d: Dictionary, length: int) -> None:
    """Time ``sample_text`` with the char tokenizer once: the library path of ``rnnkit sample``."""
    t0 = time.perf_counter()
    text = "".join(sample_text(model, d, CharTokenizer(), prime="ROMEO:", length=length, seed=1))
    dt = time.perf_counter() - t0
    assert text  # consumed: every piece was produced
    print(f"\nsample_text end to end (char tokenizer, prime 'ROMEO:', {length:,} tokens): "
          f"{dt:.3f} s, {length / dt:,.0f} tokens/s")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="char_rnn")
    p.add_argument("--hidden-size", type=int, default=None, help="override the preset")
    p.add_argument("--embed-dim", type=int, default=None, help="override the preset")
    p.add_argument("--num-layers", type=int, default=None, help="override the preset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--no-mkldnn",
        action="store_true",
        help="torch.backends.mkldnn.enabled = False: torch's own LSTM kernel, not oneDNN's",
    )
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 4000])
    p.add_argument("--primes", type=int, nargs="+", default=[10, 1000, 10000])
    p.add_argument("--fixed-prime", type=int, default=100)
    p.add_argument("--fixed-length", type=int, default=500)
    p.add_argument("--naive-prime", type=int, default=10)
    p.add_argument("--naive-length", type=int, default=200)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.repeats = max(1, args.repeats)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    model, d = build_model(args)
    cfg = model.cfg
    print(f"date {datetime.datetime.now().isoformat(timespec='seconds')}; torch {torch.__version__}"
          f"; threads {torch.get_num_threads()}; CPU {cpu_model()}"
          f"; mkldnn {'on' if torch.backends.mkldnn.enabled else 'off'}")  # fmt: skip
    print(f"model {args.arch}: {cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embed {cfg.embed_dim}"
          f", vocab {len(d)}, {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"temperature 1, full softmax; median of {args.repeats}")  # fmt: skip
    # First, in a fresh process and with a short prime, as `rnnkit sample` runs: oneDNN's LSTM
    # (mkldnn on) was seen to get faster per step once the process had run a long sequence.
    text_end_to_end(model, d, 1000)
    time_stateful(model, random_prime(d, 50, torch.Generator().manual_seed(0)), 50)  # warm-up
    by_len = [(args.fixed_prime, n) for n in sorted(args.lengths)]
    by_prime = [(n, args.fixed_length) for n in sorted(args.primes)]
    sweep("output length sweep (fixed prime)", by_len, model, d, args.repeats)
    sweep("prime length sweep (fixed output)", by_prime, model, d, args.repeats)
    naive_comparison(model, d, args.naive_prime, args.naive_length, args.repeats)


if __name__ == "__main__":
    main()
