"""The installed ``rnnkit preprocess --spm-sample-lines``: one run on a generated corpus."""

from __future__ import annotations

import json

import pytest

from rnnkit.tokenizers import select_lines
from tests.helpers import run_rnnkit
from tests.unit.test_spm_sampling import corpus, seen_lines

pytestmark = pytest.mark.e2e


def test_preprocess_trains_sentencepiece_on_the_sample(tmp_path, rnnkit_bin):
    train = corpus(tmp_path / "train.txt", 1000)
    dest = tmp_path / "out"
    args = ["preprocess", "--tokenizer", "sentencepiece", "--spm-vocab-size", "200"]
    args += ["--spm-sample-lines", "150", "--trainpref", str(train), "--destdir", str(dest)]
    r = run_rnnkit(rnnkit_bin, *args, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "on 150 of 1,000 lines" in r.stderr
    manifest = json.loads((dest / "preprocess.json").read_text())
    assert manifest["tokenizer"]["sample_lines"] == 150
    sample = set(select_lines(range(1000), 150, 1000))
    assert seen_lines((dest / "spm.model").read_bytes()) == sample
