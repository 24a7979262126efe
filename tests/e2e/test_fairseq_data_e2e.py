"""A fairseq data-bin (no preprocess.json; files written by fairseq 0.12.2, see
tests/fixtures/fairseq_data/make.sh) trains, generates and scores through the command line:
translation in the other direction of its pair with -s/-t, and a language model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_main

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fairseq_data"
TINY_MT = ["--arch", "attention_seq2seq", "--encoder-embed-dim", "4", "--encoder-hidden-size",
           "4", "--decoder-embed-dim", "4", "--decoder-hidden-size", "4"]  # fmt: skip
RUN = ["--max-update", "2", "--batch-size", "2", "--threads", "1", "--no-epoch-checkpoints"]


def test_translation_data_bin_trains_reversed_and_generates(tmp_path):
    data = tmp_path / "data-bin"
    shutil.copytree(FIXTURES / "translation", data)
    ck = tmp_path / "ck"
    run_main("train", str(data), *TINY_MT, "--save-dir", str(ck), *RUN, "-s", "en", "-t", "de")
    gen = run_main("generate", str(data), "--path", str(ck / "checkpoint_last.pt"),
                   "--gen-subset", "valid", "--beam", "2", "--threads", "1")  # fmt: skip
    lines = gen.stdout.splitlines()
    # the model reads English and writes German: the sources are the .en side of de-en files
    assert "S-1\tthe small dog" in lines and "T-1\tder <unk> hund" in lines
    assert any(line.startswith("H-0\t") for line in lines)
    ref = run_main("generate", str(data), "--path", str(ck / "checkpoint_last.pt"),
                   "--gen-subset", "valid", "--score-reference", "--threads", "1")  # fmt: skip
    assert "D-1\t" in ref.stdout and "der <unk> hund" in ref.stdout
    ambiguous = run_main("train", str(data), *TINY_MT, "--save-dir", str(tmp_path / "x"),
                         "-s", "fr", check=False)  # fmt: skip
    assert ambiguous.returncode == 2 and ambiguous.stderr.count("\n") == 1
    assert "no language pair matches -s fr (pairs: de-en)" in ambiguous.stderr


def test_lm_data_bin_trains_and_scores(tmp_path):
    data = tmp_path / "data-bin"
    shutil.copytree(FIXTURES / "lm", data)
    ck = tmp_path / "ck"
    run_main("train", str(data), "--arch", "rnn_lm", "--embed-dim", "4", "--hidden-size", "4",
             "--bptt", "4", "--save-dir", str(ck), *RUN)  # fmt: skip
    out = run_main("score", str(data), "--path", str(ck / "checkpoint_last.pt"), "--subset",
                   "valid", "--threads", "1")  # fmt: skip
    assert "tokens 10" in out.stdout + out.stderr  # 3 valid lines, one empty: 7 words + 3 </s>
    line = run_main("score", "--path", str(ck / "checkpoint_last.pt"), "--input", "-",
                    stdin="the cat\n").stdout  # fmt: skip
    assert json.loads(line)["tokens"] == 3
    wrong = run_main("train", str(data), "--arch", "rnn_lm", "--save-dir", str(tmp_path / "x"),
                     "-t", "en", check=False)  # fmt: skip
    assert wrong.returncode == 2 and "are for translation data" in wrong.stderr
