"""Proof by plugin (issue 12, item 6): a ``--user-dir`` package adds a cell, an attention score
and a whole task, and the installed ``rnnkit`` runs them with no edit to ``rnnkit/`` or ``cli/``.

The plugin is tests/fixtures/open_core_plugin: the ``mgu`` cell, the ``scaled_dot`` score and
the ``regression`` task (model ``rnn_regressor``, inference object ``Regressor``). Four
pipelines run through the installed command on tiny synthetic data (hidden 8, a few updates,
``--threads 1``), side by side in threads to bound the wall time:

- regression: preprocess → train (an MGU regressor) → generate (one number per input line) →
  score (RMSE, checked against the RMSE of generate's numbers) → score --input → rnnkit.load;
- ``rnn_lm --cell mgu``: preprocess → train → sample;
- ``attention_seq2seq``, bidirectional MGU encoder, ``--attention scaled_dot --input-feeding``:
  preprocess → train → generate with alignments;
- ``rnn_tagger --cell mgu``: preprocess → train → generate.

The one contract gap the plugin works around (values are symbols with a dictionary counted by
preprocess; see the plugin's regression module) is reported to the lead, not patched here.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.registry import import_user_dir
from tests.helpers import run_main, run_rnnkit

pytestmark = pytest.mark.e2e

PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "open_core_plugin"
USER_DIR = ("--user-dir", str(PLUGIN))
WORDS = ["up", "down", "the", "a", "cat", "dog", "runs", "sits"]
FAST = ["--threads", "1", "--dropout", "0", "--batch-size", "8"]
FEW = ["--max-update", "3", *FAST]  # a few updates, no validation


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def sentences(rng: random.Random, n: int, low: int = 2, high: int = 6) -> list[list[str]]:
    return [[rng.choice(WORDS) for _ in range(rng.randint(low, high))] for _ in range(n)]


def regression_split(root: Path, split: str, n: int, rng: random.Random) -> Path:
    """``root/split/seq.in`` and ``value``: the value counts 'up' minus half the 'down's."""
    sents = sentences(rng, n)
    write_lines(root / split / "seq.in", [" ".join(s) for s in sents])
    values = [0.5 * s.count("up") - 0.25 * s.count("down") for s in sents]
    write_lines(root / split / "value", [f"{v:g}" for v in values])
    return root / split


def regression_pipeline(rnnkit_bin: str, tmp: Path) -> dict:
    rng = random.Random(0)
    train = regression_split(tmp / "raw", "train", 40, rng)
    valid = regression_split(tmp / "raw", "valid", 12, rng)
    data, save = tmp / "data", tmp / "ckpt"
    run_rnnkit(rnnkit_bin, "preprocess", "--task", "regression", *USER_DIR, "--trainpref",
               str(train), "--validpref", str(valid), "--destdir", str(data))  # fmt: skip
    trained = run_rnnkit(rnnkit_bin, "train", str(data), *USER_DIR, "--arch", "rnn_regressor",
                         "--cell", "mgu", "--embed-dim", "8", "--hidden-size", "8",
                         "--optimizer", "adam", "--lr", "0.01", "--save-dir", str(save),
                         "--max-epoch", "1", *FAST)  # fmt: skip
    ckpt = str(save / "checkpoint_last.pt")
    generated = run_rnnkit(rnnkit_bin, "generate", *USER_DIR, "--path", ckpt, "--input",
                           str(valid / "seq.in"), "--threads", "1")  # fmt: skip
    scored = run_rnnkit(rnnkit_bin, "score", str(data), *USER_DIR, "--path", ckpt, "--subset",
                        "valid", "--threads", "1")  # fmt: skip
    return {"train": trained.stderr, "generate": generated.stdout, "score": scored.stdout,
            "valid": valid, "ckpt": ckpt, "data": data}  # fmt: skip


def lm_pipeline(rnnkit_bin: str, tmp: Path) -> dict:
    rng = random.Random(1)
    text = [" ".join(s) for s in sentences(rng, 30, 3, 7)]
    train, valid = (
        write_lines(tmp / "train.txt", text[:24]),
        write_lines(tmp / "valid.txt", text[24:]),
    )
    data, save = tmp / "data", tmp / "ckpt"
    run_rnnkit(rnnkit_bin, "preprocess", "--task", "lm", "--trainpref", str(train),
               "--validpref", str(valid), "--destdir", str(data))  # fmt: skip
    run_rnnkit(rnnkit_bin, "train", str(data), *USER_DIR, "--arch", "rnn_lm", "--cell", "mgu",
               "--embed-dim", "8", "--hidden-size", "8", "--num-layers", "1", "--bptt", "5",
               "--save-dir", str(save), *FEW)  # fmt: skip
    ckpt = str(save / "checkpoint_last.pt")
    sampled = run_rnnkit(rnnkit_bin, "sample", *USER_DIR, "--path", ckpt, "--length", "6",
                         "--seed", "1", "--threads", "1")  # fmt: skip
    return {"sample": sampled.stdout, "ckpt": ckpt}


def seq2seq_pipeline(rnnkit_bin: str, tmp: Path) -> dict:
    rng = random.Random(2)
    for split, n in (("train", 24), ("valid", 6)):
        src = sentences(rng, n, 2, 5)
        write_lines(tmp / f"{split}.src", [" ".join(s) for s in src])
        write_lines(tmp / f"{split}.tgt", [" ".join(reversed(s)).upper() for s in src])
    data, save = tmp / "data", tmp / "ckpt"
    run_rnnkit(rnnkit_bin, "preprocess", "--task", "translation", "-s", "src", "-t", "tgt",
               "--trainpref", str(tmp / "train"), "--validpref", str(tmp / "valid"),
               "--destdir", str(data))  # fmt: skip
    # Keys are 2 × 8 (both directions), so the decoder's query is 16 wide for a dot product.
    run_rnnkit(rnnkit_bin, "train", str(data), *USER_DIR, "--arch", "attention_seq2seq",
               "--cell", "mgu", "--encoder-bidirectional", "--encoder-embed-dim", "8",
               "--encoder-hidden-size", "8", "--decoder-embed-dim", "8",
               "--decoder-hidden-size", "16", "--attention", "scaled_dot", "--input-feeding",
               "--save-dir", str(save), *FEW)  # fmt: skip
    ckpt = str(save / "checkpoint_last.pt")
    generated = run_rnnkit(rnnkit_bin, "generate", *USER_DIR, "--path", ckpt, "--input",
                           str(tmp / "valid.src"), "--beam", "2", "--max-len-b", "6",
                           "--print-alignment", "--threads", "1")  # fmt: skip
    return {"generate": generated.stdout, "ckpt": ckpt, "nlines": 6}


def tagger_pipeline(rnnkit_bin: str, tmp: Path) -> dict:
    rng = random.Random(3)
    for split, n in (("train", 24), ("valid", 6)):
        sents = sentences(rng, n, 2, 5)
        write_lines(tmp / split / "seq.in", [" ".join(s) for s in sents])
        tags = [" ".join("B-x" if w in ("up", "down") else "O" for w in s) for s in sents]
        write_lines(tmp / split / "seq.out", tags)
    data, save = tmp / "data", tmp / "ckpt"
    run_rnnkit(rnnkit_bin, "preprocess", "--task", "tagging", "--trainpref", str(tmp / "train"),
               "--validpref", str(tmp / "valid"), "--destdir", str(data))  # fmt: skip
    run_rnnkit(rnnkit_bin, "train", str(data), *USER_DIR, "--arch", "rnn_tagger", "--cell",
               "mgu", "--embed-dim", "8", "--hidden-size", "8", "--save-dir", str(save),
               *FEW)  # fmt: skip
    ckpt = str(save / "checkpoint_last.pt")
    generated = run_rnnkit(rnnkit_bin, "generate", *USER_DIR, "--path", ckpt, "--input",
                           str(tmp / "valid" / "seq.in"), "--threads", "1")  # fmt: skip
    return {"generate": generated.stdout, "ckpt": ckpt, "inputs": tmp / "valid" / "seq.in"}


PIPELINES: dict[str, Callable[[str, Path], dict]] = {
    "regression": regression_pipeline,
    "lm": lm_pipeline,
    "seq2seq": seq2seq_pipeline,
    "tagger": tagger_pipeline,
}


@pytest.fixture(scope="module")
def results(rnnkit_bin: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every pipeline's outputs; the four run at once (each is a chain of subprocesses)."""
    with ThreadPoolExecutor(len(PIPELINES)) as pool:
        futures = {name: pool.submit(run, rnnkit_bin, tmp_path_factory.mktemp(name))
                   for name, run in PIPELINES.items()}  # fmt: skip
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture
def plugin() -> object:
    """The plugin imported in this process (undone after the test), for ``rnnkit.load``."""
    import_user_dir(PLUGIN)
    return sys.modules[PLUGIN.name]


def rmse(pred: list[float], gold: list[float]) -> float:
    return math.sqrt(sum((p - g) ** 2 for p, g in zip(pred, gold, strict=True)) / len(gold))


def test_regression_generate_prints_one_number_per_line_and_score_prints_their_rmse(results):
    r = results["regression"]
    assert "| valid loss" in r["train"] and "| rmse " in r["train"]
    inputs = (r["valid"] / "seq.in").read_text().splitlines()
    printed = r["generate"].splitlines()
    assert len(printed) == len(inputs) == 12
    assert all(re.fullmatch(r"-?\d+\.\d{6}", line) for line in printed), printed
    gold = [float(v) for v in (r["valid"] / "value").read_text().split()]
    m = re.fullmatch(r"valid: mse (\S+) \| rmse (\S+) \| mae (\S+) \| sentences 12\n", r["score"])
    assert m, r["score"]
    assert float(m[2]) == pytest.approx(rmse([float(x) for x in printed], gold), abs=2e-6)
    assert float(m[1]) == pytest.approx(float(m[2]) ** 2, abs=2e-6)


def test_regression_load_returns_the_plugin_inference_object(results, plugin):
    r = results["regression"]
    model = rnnkit.load(r["ckpt"], device="cpu")
    assert type(model) is plugin.inference.Regressor
    assert model.model.cfg.cell == "mgu"
    inputs = (r["valid"] / "seq.in").read_text().splitlines()
    predicted = model.predict(inputs)
    printed = [float(x) for x in r["generate"].splitlines()]
    assert predicted == pytest.approx(printed, abs=1e-6)
    with pytest.raises(RnnkitError, match="translate.*translation.*'regression'"):
        model.translate(["a b"])
    # rnnkit score on raw lines: one JSON prediction per line (the real entry point, in-process)
    proc = run_main("score", *USER_DIR, "--path", r["ckpt"], "--input", "-", stdin="up up\n\n")
    assert proc.returncode == 0, proc.stderr
    raw = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [x["value"] for x in raw] == pytest.approx(model.predict(["up up", ""]), abs=1e-6)
    # rnnkit generate on the binarized split: S-/T-/H- per sentence, then RMSE as score has it
    proc = run_main("generate", str(r["data"]), *USER_DIR, "--path", r["ckpt"],
                    "--gen-subset", "valid")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"^H-\d+\t-?\d+\.\d{6}$", proc.stdout, re.M)) == 12
    shown = re.search(r"^Generate valid: RMSE = (\S+) \| MAE = \S+ \| 12 sentences$",
                      proc.stdout, re.M)  # fmt: skip
    assert shown and float(shown[1]) == pytest.approx(model.evaluate(r["data"])["rmse"], abs=1e-4)


def test_lm_with_the_plugin_cell_trains_and_samples(results, plugin):
    r = results["lm"]
    assert r["sample"].strip()
    model = rnnkit.load(r["ckpt"], device="cpu")
    assert model.model.cfg.cell == "mgu"
    assert isinstance(model.sample("up", length=3, seed=1), str)


def test_seq2seq_with_a_bidirectional_plugin_cell_and_the_plugin_score(results, plugin):
    r = results["seq2seq"]
    lines = r["generate"].splitlines()
    assert len(lines) == r["nlines"]
    # --print-alignment: each line has its hard alignment after a tab, so attention ran.
    assert all(re.fullmatch(r"[^\t]*\t(\d+-\d+ ?)*", line) for line in lines), lines
    model = rnnkit.load(r["ckpt"], device="cpu")
    cfg = model.model.cfg
    assert (cfg.cell, cfg.encoder_bidirectional, cfg.attention, cfg.input_feeding) == (
        "mgu", True, "scaled_dot", True,
    )  # fmt: skip
    scores = [m for m in model.model.modules() if isinstance(m, plugin.attention.ScaledDotScore)]
    assert len(scores) == 1
    assert len(model.translate(["up the cat"], beam=2, max_len_b=4)) == 1


def test_tagger_with_the_plugin_cell_tags_every_token(results, plugin):
    r = results["tagger"]
    inputs = r["inputs"].read_text().splitlines()
    tagged = r["generate"].splitlines()
    assert len(tagged) == len(inputs)
    for line, tags in zip(inputs, tagged, strict=True):
        assert len(tags.split()) == len(line.split())
        assert set(tags.split()) <= {"O", "B-x"}
    model = rnnkit.load(r["ckpt"], device="cpu")
    assert model.model.cfg.cell == "mgu"
    assert torch.isfinite(next(model.model.parameters())).all()


def test_regression_preprocess_names_a_value_that_is_not_a_number(tmp_path):
    write_lines(tmp_path / "train" / "seq.in", ["up the cat", "down"])
    write_lines(tmp_path / "train" / "value", ["0.5", "lots"])
    args = ["--trainpref", str(tmp_path / "train"), "--destdir", str(tmp_path / "data")]
    proc = run_main("preprocess", "--task", "regression", *USER_DIR, *args, check=False)
    assert proc.returncode == 2
    assert re.search(r"value:2: expected a real number, got 'lots'", proc.stderr), proc.stderr
    assert not (tmp_path / "data").exists()
