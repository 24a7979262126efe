"""rnnkit next to fairseq 0.12.2, OpenNMT-py 3.5.1 and a bare PyTorch loop, in one run.

The "reversed PTB" workload of :mod:`seq2seq_workload` (2-layer LSTM 256 encoder and decoder,
general attention with input feeding, batches of 64 sentences, Adam 1e-3, no dropout) is trained
for ``--updates`` updates by each toolkit, the toolkits alternating inside each of ``--rounds``
rounds so that drift on the machine hits all of them; then the round-1 models decode the first
1,000 lines of PTB valid with beam 5 and greedy. Printed per toolkit: steady-state target
tokens/s (updates after ``--skip-updates`` only; from fairseq's ``train_inner`` log lines,
OpenNMT-py's step lines, rnnkit's ``train_log.jsonl`` and the bare loop's own clock), the peak
RSS of the command's process tree, the wall time of each decode command; and the ratios of
rnnkit to the best peer and to the bare loop. OpenNMT-py counts BOS and EOS in its target
tokens (about 4.5% more per sentence than the others), as its log reports them.

    python benchmarks/peers.py --install /tmp/peers --install-only   # venvs + data, ~10 min
    python benchmarks/peers.py --peers-dir /tmp/peers --updates 300 --rounds 2 --threads 2
    python benchmarks/peers.py --peers-dir /tmp/peers --dry-run      # check, print the commands
    python benchmarks/peers.py --updates 20 --rounds 1 --threads 1 --skip-updates 5 \
        --log-interval 5 --decode-lines 50                            # smoke test, end to end

The peers live in throw-away virtual environments under the peers dir (registry packages only,
torch 2.13.0 CPU). fairseq 0.12.2 needs patching for Python 3.11 and torch >= 2.6
(:func:`patch_fairseq`); OpenNMT-py 3.5.1 pins an older torch, so it goes in without its pins.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PTB = REPO.parent / "shared" / "data" / "ptb"
TOOLKITS = ("rnnkit", "fairseq", "onmt", "bare")
PEERS = ("fairseq", "onmt")
TORCH = "torch==2.13.0"
TRAIN_LINES, DECODE_LINES = 10_539, 1_000
ONMT_DEPS = ["configargparse", "ctranslate2<5,>=4", "tensorboard>=2.3", "flask", "waitress",
             "pyonmttok<2,>=1.37", "pyyaml", "sacrebleu", "rapidfuzz", "pyahocorasick", "six",
             "numpy", "spacy", "fasttext-wheel"]  # fmt: skip
# The model and optimiser, spelled in each toolkit's own options.
RNNKIT_MODEL = ("--arch attention_seq2seq --encoder-embed-dim 256 --encoder-hidden-size 256 "
                "--encoder-layers 2 --encoder-bidirectional false --decoder-embed-dim 256 "
                "--decoder-hidden-size 256 --decoder-layers 2 --attention general "
                "--input-feeding true --dropout 0 --batch-size 64 --optimizer adam --lr 0.001 "
                "--seed 1 --device cpu --no-epoch-checkpoints")  # fmt: skip
FAIRSEQ_MODEL = ("--task translation --source-lang src --target-lang tgt --arch lstm "
                 "--encoder-embed-dim 256 --encoder-hidden-size 256 --encoder-layers 2 "
                 "--decoder-embed-dim 256 --decoder-hidden-size 256 --decoder-layers 2 "
                 "--decoder-out-embed-dim 256 --decoder-attention 1 --dropout 0.0 "
                 "--batch-size 64 --required-batch-size-multiple 1 --max-source-positions 200 "
                 "--max-target-positions 200 --optimizer adam --lr 0.001 "
                 "--criterion cross_entropy --cpu --disable-validation --no-epoch-checkpoints "
                 "--save-interval 100000 --log-format simple --num-workers 0 --seed 1")  # fmt: skip
ONMT_CONFIG = """\
save_data: {run}
src_vocab: {run}/vocab.src
tgt_vocab: {run}/vocab.tgt
overwrite: true
data:
    corpus_1: {{path_src: {data}/rev.train.src, path_tgt: {data}/rev.train.tgt}}
    valid: {{path_src: {data}/rev.src, path_tgt: {data}/rev.tgt}}
src_vocab_size: 50000
tgt_vocab_size: 50000
src_words_min_frequency: 1
tgt_words_min_frequency: 1
model_type: text
encoder_type: rnn
decoder_type: rnn
rnn_type: LSTM
enc_layers: 2
dec_layers: 2
hidden_size: 256
word_vec_size: 256
global_attention: general
input_feed: 1
bridge: false
dropout: [0.0]
attention_dropout: [0.0]
batch_type: sents
batch_size: 64
valid_batch_size: 64
optim: adam
learning_rate: 0.001
max_grad_norm: 0
param_init: 0.1
valid_steps: 100000000
keep_checkpoint: 1
num_workers: 0
seed: 1
"""


@dataclasses.dataclass
class Layout:
    """Where everything lives under the peers dir."""

    root: Path

    def venv(self, toolkit: str) -> Path:
        return self.root / toolkit / "venv"

    def bin(self, toolkit: str, name: str) -> Path:
        return self.venv(toolkit) / "bin" / name

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def results(self) -> Path:
        return self.root / "results"


@dataclasses.dataclass
class Result:
    """One command's figures."""

    toolkit: str
    what: str  # "train r1", "beam 5", "beam 1"
    tokens_per_s: float | None = None
    peak_rss_mib: float | None = None
    wall_s: float | None = None
    lines: int | None = None
    note: str = ""


# ---------------------------------------------------------------------------- installing


def pip(venv: Path, *args: str, dry: bool) -> None:
    """One ``pip install`` into ``venv`` at low priority, torch held at 2.13.0."""
    cmd = ["nice", "-n", "19", str(venv / "bin" / "pip"), "install", "-q", *args]
    run_checked(cmd, dry, env={"PIP_CONSTRAINT": str(venv.parent.parent / "constraints.txt")})


def run_checked(cmd: list[str], dry: bool, env: dict[str, str] | None = None) -> None:
    print("+ " + shlex.join(cmd), file=sys.stderr)
    if not dry:
        subprocess.run(cmd, check=True, env={**os.environ, **(env or {})})


def install(lay: Layout, which: list[str], dry: bool) -> None:
    """Create the peers' venvs (skipping those already there) and the workload's data."""
    if not dry:
        lay.root.mkdir(parents=True, exist_ok=True)
        (lay.root / "constraints.txt").write_text(TORCH + "\n")
    for toolkit in [t for t in PEERS if t in which]:
        venv = lay.venv(toolkit)
        if (venv / "installed").is_file():
            print(f"{venv}: already installed", file=sys.stderr)
            continue
        run_checked([sys.executable, "-m", "venv", "--clear", str(venv)], dry)
        pip(venv, TORCH, dry=dry)
        if toolkit == "fairseq":  # its hydra-core 1.0.7 pin does not import on Python 3.11
            pip(venv, "fairseq==0.12.2", dry=dry)
            pip(venv, "hydra-core==1.3.2", "omegaconf==2.3.0", dry=dry)
            run_checked(
                [str(venv / "bin" / "python"), str(Path(__file__).resolve()), "patch-fairseq"], dry
            )
            check = "import fairseq, fairseq.options, torch; print('fairseq', fairseq.__version__)"
        else:  # it pins torch<2.3: no deps, then its requirements by hand
            pip(venv, "--no-deps", "OpenNMT-py==3.5.1", dry=dry)
            pip(venv, *ONMT_DEPS, dry=dry)
            check = (
                "import onmt, onmt.bin.train, onmt.bin.translate; print('onmt', onmt.__version__)"
            )
        run_checked([str(venv / "bin" / "python"), "-c", check], dry)
        if not dry:
            (venv / "installed").write_text(TORCH + "\n")
    prepare_data(lay, dry)


def prepare_data(lay: Layout, dry: bool) -> None:
    """rev.train.* (first 10,539 PTB train lines), rev.* (PTB valid), rev.test1000.* (its first
    1,000 lines); the target side is the source's words reversed."""
    if not (PTB / "ptb.train.txt").is_file():
        sys.exit(f"peers: {PTB}: PTB is not there; the workload needs ../shared/data/ptb")
    if dry or (lay.data / "rev.test1000.tgt").is_file():
        return
    lay.data.mkdir(parents=True, exist_ok=True)
    train = (PTB / "ptb.train.txt").read_text().splitlines()[:TRAIN_LINES]
    valid = (PTB / "ptb.valid.txt").read_text().splitlines()
    for stem, lines in (
        ("rev.train", train),
        ("rev", valid),
        ("rev.test1000", valid[:DECODE_LINES]),
    ):
        words = [line.split() for line in lines]
        (lay.data / f"{stem}.src").write_text("".join(" ".join(w) + "\n" for w in words))
        (lay.data / f"{stem}.tgt").write_text("".join(" ".join(w[::-1]) + "\n" for w in words))
    print(f"wrote the reversed-PTB pairs to {lay.data}", file=sys.stderr)


def patch_fairseq() -> None:
    """Make the installed fairseq 0.12.2 (this interpreter's) run on Python 3.11 + torch 2.13.

    Python 3.11 refuses a dataclass instance as a field default: ``x: XConfig = XConfig()`` and
    ``field(default=XConfig())`` become ``field(default_factory=XConfig)``, and ``hydra_init``
    calls the factory. torch >= 2.6 loads with ``weights_only=True`` by default, which fairseq's
    pickled checkpoints cannot pass: its own loader asks for ``weights_only=False``. Idempotent.
    """
    import importlib.util

    spec = importlib.util.find_spec("fairseq")
    assert spec and spec.submodule_search_locations, "fairseq is not installed here"
    root = Path(spec.submodule_search_locations[0])
    annotated = re.compile(r"^([ \t]+\w+: )(\w+Config) = \2\(\)[ \t]*$", re.M)
    for rel in ("dataclass/configs.py", "models/transformer/transformer_config.py"):
        text, n = annotated.subn(r"\1\2 = field(default_factory=\2)", (root / rel).read_text())
        if n and not re.search(r"from dataclasses import[^\n]*\bfield\b", text):
            text = text.replace("from dataclasses import ", "from dataclasses import field, ", 1)
        (root / rel).write_text(text)
    for path in root.rglob("*.py"):
        if "examples" not in path.parts:
            text = path.read_text()
            new = re.sub(r"field\(default=(\w+Config)\(\)", r"field(default_factory=\1", text)
            if new != text:
                path.write_text(new)
    edits = {
        "dataclass/initialize.py": (
            "        v = FairseqConfig.__dataclass_fields__[k].default\n",
            "        import dataclasses\n"
            "        _field = FairseqConfig.__dataclass_fields__[k]\n"
            "        v = (_field.default if _field.default_factory is dataclasses.MISSING\n"
            "             else _field.default_factory())\n",
        ),
        "checkpoint_utils.py": (
            'state = torch.load(f, map_location=torch.device("cpu"))',
            'state = torch.load(f, map_location=torch.device("cpu"), weights_only=False)',
        ),
    }
    for rel, (old, new) in edits.items():
        text = (root / rel).read_text()
        if old in text:
            (root / rel).write_text(text.replace(old, new))
    print(f"patched fairseq under {root}")


# ---------------------------------------------------------------------------- running


def tree_rss(root: int) -> int:
    """Summed resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf(
                "SC_PAGE_SIZE"
            )
        except (OSError, ValueError, IndexError):
            pass
        stack.extend(children.get(pid, []))
    return total


def timed(cmd: list[str], log: Path, env: dict[str, str], stdout: Path | None = None
          ) -> tuple[float, float]:  # fmt: skip
    """Run ``cmd`` (stderr, and stdout unless ``stdout``, to ``log``); returns (wall seconds, peak
    RSS MiB: its process tree's sum sampled every 0.2 s, or its largest process's if larger)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("+ " + shlex.join(cmd), file=sys.stderr)
    with open(log, "wb") as err, open(stdout, "wb") if stdout else err as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        peak = 0
        while True:  # wait4: the rusage of the command (and its reaped children) comes with it
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        sys.exit(f"peers: failed ({proc.returncode}): {shlex.join(cmd)}\n" + "\n".join(tail))
    return wall, max(peak, usage.ru_maxrss * 1024) / 2**20


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop("PIP_CONSTRAINT", None)
    return env


@dataclasses.dataclass
class Bench:
    """One benchmark run's settings and where its commands are."""

    lay: Layout
    rnnkit: Path  # the rnnkit executable
    python: Path  # the interpreter that has rnnkit (the bare loop runs in it)
    updates: int
    skip: int
    log_interval: int
    threads: int
    decode_lines: int
    dry: bool

    def run(self, cmd: list[str], log: Path, **kw: Path) -> tuple[float, float]:
        if self.dry:
            print(shlex.join(cmd), *(f"> {v}" for v in kw.values()))
            return 0.0, 0.0
        return timed(cmd, log, thread_env(self.threads), **kw)

    @property
    def test_src(self) -> Path:
        if self.decode_lines == DECODE_LINES:
            return self.lay.data / "rev.test1000.src"
        return self.lay.data / f"rev.test{self.decode_lines}.src"


def split(options: str) -> list[str]:
    return options.split()


# ---------------------------------------------------------------------------- the toolkits


def prepare(b: Bench, which: list[str]) -> None:
    """Binarize / build vocabularies once per peers dir (kept between runs)."""
    lay, data = b.lay, b.lay.data
    if b.decode_lines != DECODE_LINES and not b.dry and not b.test_src.is_file():
        lines = (data / "rev.test1000.src").read_text().splitlines(keepends=True)
        b.test_src.write_text("".join(lines[: b.decode_lines]))
        tgt = (data / "rev.test1000.tgt").read_text().splitlines(keepends=True)
        b.test_src.with_suffix(".tgt").write_text("".join(tgt[: b.decode_lines]))
    logs = lay.results / "prepare"
    if "rnnkit" in which or "bare" in which:
        if b.dry or not (lay.root / "rnnkit/data/train.src-tgt.src.bin").is_file():
            b.run([str(b.rnnkit), "preprocess", "--task", "translation", "-s", "src", "-t", "tgt",
                   "--trainpref", f"{data}/rev.train", "--validpref", f"{data}/rev",
                   "--destdir", str(lay.root / "rnnkit/data"), "--force"],
                  logs / "rnnkit.log")  # fmt: skip
    if "fairseq" in which and (b.dry or not (fairseq_bin(b) / "test.src-tgt.src.bin").is_file()):
        b.run([str(lay.bin("fairseq", "fairseq-preprocess")), "--source-lang", "src",
               "--target-lang", "tgt", "--trainpref", f"{data}/rev.train", "--validpref",
               f"{data}/rev", "--testpref", str(b.test_src.with_suffix("")), "--destdir",
               str(fairseq_bin(b)), "--workers", "1"], logs / "fairseq.log")  # fmt: skip
    if "onmt" in which:
        cfg = lay.root / "onmt/rev_lstm.yaml"
        if not b.dry:
            cfg.write_text(ONMT_CONFIG.format(run=lay.root / "onmt/run", data=data))
        if b.dry or not (lay.root / "onmt/run/vocab.tgt").is_file():
            b.run([str(lay.bin("onmt", "onmt_build_vocab")), "-config", str(cfg), "-n_sample",
                   "-1"], logs / "onmt.log")  # fmt: skip


def fairseq_bin(b: Bench) -> Path:
    return b.lay.root / f"fairseq/data-bin/rev{b.decode_lines}"


def fresh(b: Bench, path: Path) -> Path:
    """``path``, emptied (a save dir from an earlier run would be resumed)."""
    if not b.dry and path.exists():
        import shutil

        shutil.rmtree(path)
    return path


def train(b: Bench, toolkit: str, tag: str) -> Result:
    """Train ``toolkit`` for ``b.updates`` updates; returns its figures."""
    lay, log = b.lay, b.lay.results / f"{toolkit}_train_{tag}.log"
    every = ["--log-interval", str(b.log_interval)]
    if toolkit == "rnnkit":
        save = fresh(b, lay.root / f"rnnkit/ckpt_{tag}")
        cmd = [str(b.rnnkit), "train", str(lay.root / "rnnkit/data"), *split(RNNKIT_MODEL),
               "--max-update", str(b.updates), *every, "--threads", str(b.threads),
               "--save-dir", str(save)]  # fmt: skip
        parse = lambda: rnnkit_speed(save / "train_log.jsonl", b.skip)  # noqa: E731
    elif toolkit == "fairseq":
        save = fresh(b, lay.root / f"fairseq/ckpt_{tag}")
        cmd = [str(lay.bin("fairseq", "fairseq-train")), str(fairseq_bin(b)),
               *split(FAIRSEQ_MODEL), "--max-update", str(b.updates), *every,
               "--save-dir", str(save)]  # fmt: skip
        parse = lambda: fairseq_speed(log, b.skip)  # noqa: E731
    elif toolkit == "onmt":
        for old in (lay.root / "onmt/run").glob(f"model_{tag}_step_*.pt"):
            old.unlink()
        cmd = [str(lay.bin("onmt", "onmt_train")), "-config", str(lay.root / "onmt/rev_lstm.yaml"),
               "-train_steps", str(b.updates), "-save_checkpoint_steps", str(b.updates),
               "-save_model", str(lay.root / f"onmt/run/model_{tag}"),
               "-report_every", str(b.log_interval)]  # fmt: skip
        parse = lambda: onmt_speed(log, b.skip)  # noqa: E731
    else:
        out = lay.results / f"bare_train_{tag}.json"
        cmd = [str(b.python), str(Path(__file__).resolve()), "bare-worker", "--data",
               str(lay.root / "rnnkit/data"), "--updates", str(b.updates), "--skip", str(b.skip),
               "--threads", str(b.threads), "--json", str(out)]  # fmt: skip
        parse = lambda: json.loads(out.read_text())["tokens_per_s"]  # noqa: E731
    wall, rss = b.run(cmd, log)
    speed = None if b.dry else parse()
    return Result(toolkit, f"train {tag}", tokens_per_s=speed, peak_rss_mib=rss, wall_s=wall)


def decode(b: Bench, toolkit: str, beam: int) -> Result:
    """Decode the test lines with the round-1 model of ``toolkit``; the whole command's wall."""
    lay, stem = b.lay, b.lay.results / f"{toolkit}_beam{beam}"
    hyp, log = stem.with_suffix(".hyp"), stem.with_suffix(".log")
    if toolkit == "rnnkit":
        ckpt = lay.root / "rnnkit/ckpt_r1/checkpoint_last.pt"
        cmd = [str(b.rnnkit), "generate", "--path", str(ckpt),
               "--input", str(b.test_src), "--beam", str(beam), "--buffer-size", "1000",
               "--max-len-a", "1.2", "--max-len-b", "10", "--threads", str(b.threads)]  # fmt: skip
        wall, rss = b.run(cmd, log, stdout=hyp)
        count = lambda: len(hyp.read_text().splitlines())  # noqa: E731
    elif toolkit == "fairseq":
        cmd = [str(lay.bin("fairseq", "fairseq-generate")), str(fairseq_bin(b)), "--path",
               str(lay.root / "fairseq/ckpt_r1/checkpoint_last.pt"), "--gen-subset", "test",
               "--source-lang", "src", "--target-lang", "tgt", "--beam", str(beam), "--nbest",
               "1", "--cpu"]  # fmt: skip
        wall, rss = b.run(cmd, log, stdout=hyp)
        count = lambda: sum(line.startswith("H-") for line in hyp.read_text().splitlines())  # noqa: E731
    else:
        model = lay.root / f"onmt/run/model_r1_step_{b.updates}.pt"
        cmd = ["env", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1", str(lay.bin("onmt", "onmt_translate")),
               "-model", str(model), "-src", str(b.test_src), "-output", str(hyp), "-beam_size",
               str(beam), "-n_best", "1", "-batch_size", "30", "-batch_type", "sents",
               "-gpu", "-1"]  # fmt: skip
        wall, rss = b.run(cmd, log)
        count = lambda: len(hyp.read_text().splitlines())  # noqa: E731
    lines = None if b.dry else count()
    if lines is not None and lines != b.decode_lines:
        sys.exit(f"peers: {toolkit} beam {beam} wrote {lines} lines, not {b.decode_lines} ({log})")
    return Result(toolkit, f"beam {beam}", peak_rss_mib=rss, wall_s=wall, lines=lines)


# ---------------------------------------------------------------------------- log parsing


def rnnkit_speed(path: Path, skip: int) -> float:
    """Target tokens/s over the ``train`` records of ``train_log.jsonl`` after ``skip`` updates:
    each interval between two records weighs the later record's ``tokens_per_s`` by its length."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("event") == "train"]
    clock = "wall" if all("wall" in r for r in train) else "time"
    tokens = seconds = 0.0
    for a, b in zip(train, train[1:], strict=False):
        if a["updates"] >= skip and b[clock] > a[clock]:
            seconds += b[clock] - a[clock]
            tokens += (b[clock] - a[clock]) * b["tokens_per_s"]
    return steady(tokens, seconds, path)


def fairseq_speed(path: Path, skip: int) -> float:
    """From ``| train_inner |`` lines: an interval of ``du`` updates trains ``du * wpb`` target
    tokens at ``wps`` tokens/s (``ups`` has two decimals only); intervals ending at or before
    ``skip`` are warm-up."""
    tokens = seconds = 0.0
    last = 0
    for line in path.read_text(errors="replace").splitlines():
        if "| train_inner |" in line:
            kv = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", line)}
            n = int(kv["num_updates"])
            du, last = n - last, n
            if n > skip and kv["wps"] > 0:
                seconds += du * kv["wpb"] / kv["wps"]
                tokens += du * kv["wpb"]
    return steady(tokens, seconds, path)


ONMT_STEP = re.compile(r"Step\s+(\d+)/\s*\d+;.*?bsz:\s*\d+/\s*(\d+)/\s*\d+;\s*\d+/\s*(\d+) tok/s")


def onmt_speed(path: Path, skip: int) -> float:
    """From ``Step N/M; ... bsz: s/t/n; S/T tok/s`` lines (one per ``-report_every`` steps): an
    interval of ``ds`` steps trains ``t * ds`` target tokens at ``T`` tokens/s."""
    tokens = seconds = 0.0
    last = 0
    for line in path.read_text(errors="replace").splitlines():
        if m := ONMT_STEP.search(line):
            step, per_batch, rate = map(int, m.groups())
            ds, last = step - last, step
            if step > skip and rate > 0:
                tokens += per_batch * ds
                seconds += per_batch * ds / rate
    return steady(tokens, seconds, path)


def steady(tokens: float, seconds: float, path: Path) -> float:
    if seconds <= 0:
        sys.exit(f"peers: {path}: no logged interval after the warm-up (--skip-updates)")
    return tokens / seconds


# ---------------------------------------------------------------------------- the bare loop


def bare_worker(data: Path, updates: int, skip: int, threads: int, out: Path) -> None:
    """The bare PyTorch loop of ``train_seq2seq.py`` (:class:`RawSeq2Seq`, no rnnkit code in the
    model or the step) on the batches ``rnnkit train`` would draw, timed per update."""
    import torch

    sys.path.insert(0, str(HERE))
    from train_seq2seq import raw_steps

    if threads:
        torch.set_num_threads(threads)
    tokens = seconds = 0.0
    for update, (n, spent) in enumerate(raw_steps(data, updates), 1):
        if update > skip:
            tokens, seconds = tokens + n, seconds + spent
    out.write_text(json.dumps({"tokens_per_s": steady(tokens, seconds, out)}) + "\n")


# ---------------------------------------------------------------------------- the table


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summarize(results: list[Result], which: list[str]) -> dict[str, dict[str, float | list[float]]]:
    """Per toolkit: training tokens/s per round and their mean, peak RSS, decode walls."""
    table: dict[str, dict[str, float | list[float]]] = {}
    for t in which:
        mine = [r for r in results if r.toolkit == t]
        rounds = [r.tokens_per_s for r in mine if r.what.startswith("train") and r.tokens_per_s]
        row: dict[str, float | list[float]] = {"train_tok_s_rounds": rounds}
        if rounds:
            row["train_tok_s"] = mean(rounds)
        rss = [r.peak_rss_mib for r in mine if r.what.startswith("train") and r.peak_rss_mib]
        if rss:
            row["train_peak_rss_mib"] = max(rss)
        for r in mine:
            if r.what.startswith("beam") and r.wall_s is not None:
                key = "beam5" if r.what == "beam 5" else "greedy"
                row[f"{key}_wall_s"], row[f"{key}_peak_rss_mib"] = r.wall_s, r.peak_rss_mib or 0
        table[t] = row
    return table


def ratios(table: dict[str, dict]) -> dict[str, float]:
    """rnnkit over the best peer (higher is better for rnnkit) and over the bare loop."""
    out: dict[str, float] = {}
    kit = table.get("rnnkit", {})
    peers = [table[p] for p in PEERS if p in table]
    if "train_tok_s" in kit:
        best = [p["train_tok_s"] for p in peers if "train_tok_s" in p]
        if best:
            out["train_vs_best_peer"] = kit["train_tok_s"] / max(best)
        if "train_tok_s" in table.get("bare", {}):
            out["train_vs_bare"] = kit["train_tok_s"] / table["bare"]["train_tok_s"]
    for key in ("beam5_wall_s", "greedy_wall_s"):
        walls = [p[key] for p in peers if key in p]
        if key in kit and walls:  # a speed ratio: the best peer's wall over rnnkit's
            out[key.replace("_wall_s", "_vs_best_peer")] = min(walls) / kit[key]
    return out


def render(table: dict[str, dict], rat: dict[str, float], header: str) -> str:
    names = {"rnnkit": "rnnkit", "fairseq": "fairseq 0.12.2", "onmt": "OpenNMT-py 3.5.1",
             "bare": "bare PyTorch loop"}  # fmt: skip
    cols = list(table)
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    rows = [
        ("training, target tok/s (mean)", lambda r: fmt(r.get("train_tok_s"), ",.0f")),
        ("  per round", lambda r: ", ".join(f"{v:,.0f}" for v in r.get("train_tok_s_rounds", []))),
        ("training peak RSS, MiB", lambda r: fmt(r.get("train_peak_rss_mib"), ",.0f")),
        ("beam 5, whole command wall, s", lambda r: fmt(r.get("beam5_wall_s"), ".1f")),
        ("beam 5 peak RSS, MiB", lambda r: fmt(r.get("beam5_peak_rss_mib"), ",.0f")),
        ("greedy, whole command wall, s", lambda r: fmt(r.get("greedy_wall_s"), ".1f")),
    ]
    lines = [header, "", "| | " + " | ".join(names[c] for c in cols) + " |",
             "| --- |" + " ---: |" * len(cols)]  # fmt: skip
    lines += [
        f"| {label} | " + " | ".join(cell(table[c]) for c in cols) + " |" for label, cell in rows
    ]
    lines.append("")
    labels = {"train_vs_best_peer": "training, rnnkit / best peer",
              "train_vs_bare": "training, rnnkit / bare loop",
              "beam5_vs_best_peer": "beam 5, best peer's wall / rnnkit's",
              "greedy_vs_best_peer": "greedy, best peer's wall / rnnkit's"}  # fmt: skip
    lines += [f"{labels[k]}: {v:.2f}x" for k, v in rat.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--install", type=Path, metavar="DIR",
                   help="install the peers' venvs and the data under DIR first (it becomes "
                        "--peers-dir); venvs already there are kept")  # fmt: skip
    p.add_argument("--install-only", action="store_true", help="stop after --install")
    p.add_argument(
        "--peers-dir",
        type=Path,
        default=Path(os.environ.get("PEERS_DIR", "/tmp/peers")),
        help="the venvs, data, checkpoints and logs (default $PEERS_DIR or /tmp/peers)",
    )
    p.add_argument("--updates", type=int, default=300, help="training updates per run (300)")
    p.add_argument("--rounds", type=int, default=2, help="alternating training rounds (2)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every toolkit (2)")
    p.add_argument("--only", default=",".join(TOOLKITS),
                   help="comma-separated subset of rnnkit,fairseq,onmt,bare")  # fmt: skip
    p.add_argument("--skip-updates", type=int, default=60,
                   help="warm-up updates left out of tokens/s (60)")  # fmt: skip
    p.add_argument(
        "--log-interval", type=int, default=20, help="updates per training log line (20)"
    )
    p.add_argument(
        "--decode-lines",
        type=int,
        default=DECODE_LINES,
        help="decode only the first N of the 1,000 test lines (a smoke test)",
    )
    p.add_argument("--no-decode", action="store_true", help="training only")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the arguments, the venvs and the data; print the commands",
    )
    a = p.parse_args(argv)
    which = [t.strip() for t in a.only.split(",") if t.strip()]
    if not which or set(which) - set(TOOLKITS):
        p.error(f"--only: a comma-separated subset of {','.join(TOOLKITS)}, not {a.only!r}")
    a.only = [t for t in TOOLKITS if t in which]
    if a.updates < 1 or a.rounds < 1 or a.threads < 0 or a.log_interval < 1:
        p.error("--updates, --rounds and --log-interval must be at least 1, --threads 0 or more")
    if not 0 <= a.skip_updates < a.updates:
        p.error(f"--skip-updates must be in [0, --updates), not {a.skip_updates}")
    if a.skip_updates + a.log_interval > a.updates and set(a.only) - {"bare"}:
        p.error("no logged interval would be left after the warm-up: lower --skip-updates or "
                "--log-interval, or raise --updates")  # fmt: skip
    if not 1 <= a.decode_lines <= DECODE_LINES:
        p.error(f"--decode-lines must be in [1, {DECODE_LINES}]")
    if a.install:
        a.peers_dir = a.install
    a.peers_dir = a.peers_dir.resolve()
    return a


def rnnkit_commands() -> tuple[Path, Path]:
    """The ``rnnkit`` executable and its interpreter: beside this interpreter, else the repo's."""
    for python in (Path(sys.executable), REPO / ".venv" / "bin" / "python"):
        if (python.parent / "rnnkit").is_file():
            return python.parent / "rnnkit", python
    sys.exit("peers: no rnnkit executable beside this interpreter or in the repo's .venv")


def missing(a: argparse.Namespace, lay: Layout) -> list[str]:
    """What the benchmark needs and does not find."""
    gone = [f"{lay.venv(t)} (run --install {lay.root})" for t in a.only
            if t in PEERS and not (lay.venv(t) / "installed").is_file()]  # fmt: skip
    if not (lay.data / "rev.test1000.src").is_file():
        gone.append(f"{lay.data}/rev.* (run --install {lay.root})")
    return gone


def main(argv: list[str]) -> None:
    if argv[:1] == ["patch-fairseq"]:
        return patch_fairseq()
    if argv[:1] == ["bare-worker"]:
        p = argparse.ArgumentParser(prog="peers.py bare-worker")
        for name, kind in (("--data", Path), ("--updates", int), ("--skip", int),
                           ("--threads", int), ("--json", Path)):  # fmt: skip
            p.add_argument(name, type=kind, required=True)
        w = p.parse_args(argv[1:])
        return bare_worker(w.data, w.updates, w.skip, w.threads, w.json)
    a = parse_args(argv)
    lay = Layout(a.peers_dir)
    if a.install:
        install(lay, a.only, a.dry_run)
        if a.install_only:
            return
    gone = missing(a, lay)
    for what in gone:
        print(f"peers: missing {what}", file=sys.stderr)
    if gone and not a.dry_run:
        sys.exit(2)
    if not (PTB / "ptb.train.txt").is_file():
        print(f"peers: {PTB}: PTB is not there; skipping (the workload needs it)", file=sys.stderr)
        sys.exit(0 if a.dry_run else 2)
    rnnkit, python = rnnkit_commands()
    b = Bench(lay, rnnkit, python, a.updates, a.skip_updates, a.log_interval, a.threads,
              a.decode_lines, a.dry_run)  # fmt: skip
    results = bench(b, a)
    if a.dry_run:
        sys.exit(1 if gone else 0)
    report(results, a)


def note(b: Bench, what: str) -> None:
    """A progress line: on stderr, or as a comment among the commands of a dry run."""
    print(f"# {what}" if b.dry else f"== {what}", file=sys.stdout if b.dry else sys.stderr)


def bench(b: Bench, a: argparse.Namespace) -> list[Result]:
    """Alternating training rounds, then the round-1 models decode (beam 5, then greedy)."""
    prepare(b, a.only)
    results = []
    for r in range(1, a.rounds + 1):
        for toolkit in a.only:
            note(b, f"round {r}: {toolkit}, {a.updates} updates")
            results.append(train(b, toolkit, f"r{r}"))
            if not b.dry:
                print(f"   {results[-1].tokens_per_s:,.0f} target tok/s", file=sys.stderr)
    for beam in () if a.no_decode else (5, 1):
        for toolkit in [t for t in a.only if t != "bare"]:
            note(b, f"decoding {a.decode_lines} lines: {toolkit}, beam {beam}")
            results.append(decode(b, toolkit, beam))
    return results


def report(results: list[Result], a: argparse.Namespace) -> None:
    import platform

    table = summarize(results, a.only)
    rat = ratios(table)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.machine())  # fmt: skip
    header = (f"reversed PTB, {a.updates} updates x {a.rounds} rounds (warm-up {a.skip_updates}), "
              f"{a.threads} threads, decode {a.decode_lines} lines; {cpu}; "
              f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    print(render(table, rat, header))
    if a.json:
        doc = {"header": header, "args": {k: str(v) if isinstance(v, Path) else v
                                          for k, v in vars(a).items()},
               "results": [dataclasses.asdict(r) for r in results], "table": table,
               "ratios": rat}  # fmt: skip
        tmp = a.json.with_name(a.json.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(a.json)


if __name__ == "__main__":
    main(sys.argv[1:])
