"""A CRF tagger with character features through the installed ``rnnkit``: preprocess → train a
few updates → ``generate --input`` on raw lines (one of them all unseen words)."""

from __future__ import annotations

import pytest

from tests.helpers import run_rnnkit
from tests.unit.test_tagging import toy, write_split

pytestmark = pytest.mark.e2e


def test_crf_char_tagger_trains_and_tags_raw_lines(tmp_path, rnnkit_bin):
    train, valid = (
        write_split(tmp_path / "train", toy(60, 1)),
        write_split(tmp_path / "valid", toy(10, 2)),
    )
    data, save = tmp_path / "data", tmp_path / "ckpt"
    run_rnnkit(rnnkit_bin, "preprocess", "--task", "tagging", "--trainpref", str(train),
               "--validpref", str(valid), "--destdir", str(data))  # fmt: skip
    run_rnnkit(rnnkit_bin, "train", str(data), "--arch", "rnn_tagger", "--save-dir", str(save),
               "--embed-dim", "8", "--hidden-size", "8", "--label-head", "true", "--crf", "true",
               "--char-features", "cnn", "--char-dim", "8", "--word-dropout-alpha", "0.25",
               "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--max-update", "6",
               "--threads", "1")  # fmt: skip
    lines = ["a b c", "zzz qq", "", "d e a b"]
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in lines))
    proc = run_rnnkit(rnnkit_bin, "generate", "--path", str(save / "checkpoint_last.pt"),
                      "--input", str(tmp_path / "in.txt"), "--print-label",
                      "--threads", "1")  # fmt: skip
    out = proc.stdout.splitlines()
    assert len(out) == len(lines) and out[2] == ""
    for line, shown in zip(lines, out, strict=True):
        if line:
            label, tags = shown.split("\t")
            assert label in {"has_c", "no_c"} and len(tags.split()) == len(line.split())
            assert set(tags.split()) <= {"O", "B-x", "I-x", "B-y"}
