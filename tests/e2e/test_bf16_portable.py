"""``--amp bf16`` on a CPU without oneDNN bf16: ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's switch, read
before it starts, so only in a subprocess) makes any x86 CPU one. There oneDNN's LSTM has no bf16
kernel; rnnkit runs its recurrent layers in fp32 inside autocast, with one warning per run. Tiny
LM, translation and tagging models train and decode through the installed ``rnnkit``."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path

import pytest

from rnnkit.data.preprocess import PreprocessConfig, preprocess
from tests.helpers import run_rnnkit
from tests.unit.test_tagging import make_data

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        platform.machine().lower() not in ("x86_64", "amd64"), reason="ONEDNN_MAX_CPU_ISA is x86's"
    ),
]
AVX2 = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
WARNING = "--amp bf16: this CPU has no native bf16"
TRAIN = ["--amp", "bf16", "--max-epoch", "1", "--batch-size", "4", "--optimizer", "adam",
         "--lr", "0.01", "--threads", "1", "--no-epoch-checkpoints"]  # fmt: skip
SEQ2SEQ = ["--arch", "attention_seq2seq", "--encoder-embed-dim", "8", "--encoder-hidden-size",
           "8", "--decoder-embed-dim", "8", "--decoder-hidden-size", "16",
           "--encoder-bidirectional", "true"]  # fmt: skip
TINY = ["--embed-dim", "8", "--hidden-size", "8"]


def run_avx2(rnnkit_bin: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``rnnkit ARGS`` with oneDNN capped at AVX2; it must exit 0 and warn once about bf16."""
    proc = run_rnnkit(rnnkit_bin, *args, stdin=stdin, env=AVX2, check=False)
    assert proc.returncode == 0, f"rnnkit {' '.join(args)} failed:\n{proc.stderr}"
    assert proc.stderr.count(WARNING) == 1, proc.stderr
    return proc


def assert_finite_losses(save: Path) -> None:
    events = [json.loads(line) for line in (save / "train_log.jsonl").open()]
    losses = [e["loss"] for e in events if e["event"] in ("train_epoch", "valid")]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), events


def test_a_language_model_trains(tmp_path, rnnkit_bin):
    text = tmp_path / "train.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 4)
    data = tmp_path / "data"
    preprocess(PreprocessConfig(task="lm", trainpref=str(text), validpref=(str(text),),
                                destdir=str(data)))  # fmt: skip
    save = tmp_path / "ckpt"
    run_avx2(rnnkit_bin, "train", str(data), "--arch", "rnn_lm", *TINY, "--num-layers", "2",
             "--bptt", "8", "--save-dir", str(save), *TRAIN)  # fmt: skip
    assert_finite_losses(save)


def test_a_translation_model_trains_and_decodes(tmp_path, rnnkit_bin):
    pairs = [("a b c", "c b a"), ("b c", "c b"), ("d a", "a d"), ("c d b a", "a b d c")] * 4
    for side, column in (("src", 0), ("tgt", 1)):
        (tmp_path / f"train.{side}").write_text("".join(p[column] + "\n" for p in pairs))
    data, train = tmp_path / "data", str(tmp_path / "train")
    sides = {"source_lang": "src", "target_lang": "tgt"}
    preprocess(PreprocessConfig(task="translation", trainpref=train, validpref=(train,),
                                destdir=str(data), **sides))  # fmt: skip
    save = tmp_path / "ckpt"
    run_avx2(rnnkit_bin, "train", str(data), *SEQ2SEQ, "--save-dir", str(save), *TRAIN)
    assert_finite_losses(save)
    lines = ["a b c", "", "d a b"]
    out = run_avx2(rnnkit_bin, "generate", "--path", str(save / "checkpoint_last.pt"), "-i", "-",
                   "--beam", "2", "--amp", "bf16", stdin="\n".join(lines) + "\n")  # fmt: skip
    hyps = out.stdout.split("\n")
    assert len(hyps) == 4 and hyps[1] == hyps[3] == ""  # one line per line, empty for empty
    assert set(" ".join(hyps).split()) <= {"a", "b", "c", "d", "<unk>"}


def test_a_tagger_trains_and_tags(tmp_path, rnnkit_bin):
    data = make_data(tmp_path)
    save = tmp_path / "ckpt"
    run_avx2(rnnkit_bin, "train", str(data), "--arch", "rnn_tagger", "--label-head", "true",
             *TINY, "--save-dir", str(save), *TRAIN)  # fmt: skip
    assert_finite_losses(save)
    out = run_avx2(rnnkit_bin, "generate", "--path", str(save / "checkpoint_last.pt"), "-i", "-",
                   "--amp", "bf16", stdin="a b c\n\nc d\n")  # fmt: skip
    tags = [line.split() for line in out.stdout.split("\n")]
    assert [len(t) for t in tags] == [3, 0, 2, 0]
    assert {t for line in tags for t in line} <= {"O", "B-x", "I-x", "B-y"}
