"""The installed ``rnnkit preprocess`` as a user runs it: shared-data slices and plugins."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.binarized import IndexedDataset
from rnnkit.dictionary import Dictionary
from tests.helpers import run_rnnkit

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def rnnkit(bin_: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_rnnkit(bin_, *args, env=env, check=False, timeout=120)


def head(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` lines of ``src`` (a small slice keeps the test fast)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        dst.write_bytes(b"".join(line for _, line in zip(range(n), f, strict=False)))
    return dst


@pytest.mark.shared_data
def test_lm_on_ptb_slice_with_two_workers_equals_one(tmp_path, shared_data, rnnkit_bin):
    train = head(shared_data / "ptb/ptb.train.txt", tmp_path / "train.txt", 2000)
    valid = head(shared_data / "ptb/ptb.valid.txt", tmp_path / "valid.txt", 200)
    outs = []
    for w in (1, 2):
        dest = tmp_path / f"w{w}"
        r = rnnkit(
            rnnkit_bin,
            "preprocess",
            "--task",
            "lm",
            "--trainpref",
            str(train),
            "--validpref",
            str(valid),
            "--destdir",
            str(dest),
            "--workers",
            str(w),
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout == "" and "train" in r.stderr  # the summary table is on stderr
        outs.append(dest)
    for name in ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    ds = IndexedDataset(outs[0] / "train")
    words = sum(len(line.split()) for line in train.read_text().splitlines())
    assert len(ds) == 2000 and ds.num_tokens == words + 2000  # one </s> per line
    assert ds.dtype == np.uint16


@pytest.mark.shared_data
def test_translation_on_multi30k_slice_with_sentencepiece(tmp_path, shared_data, rnnkit_bin):
    for lang in ("de", "en"):
        head(shared_data / f"multi30k/train.{lang}", tmp_path / f"train.{lang}", 1500)
        head(shared_data / f"multi30k/val.{lang}", tmp_path / f"val.{lang}", 100)
    dest = tmp_path / "m30k"
    r = rnnkit(
        rnnkit_bin,
        "preprocess",
        "--task",
        "translation",
        "-s",
        "de",
        "-t",
        "en",
        "--trainpref",
        str(tmp_path / "train"),
        "--validpref",
        str(tmp_path / "val"),
        "--destdir",
        str(dest),
        "--tokenizer",
        "sentencepiece",
        "--spm-vocab-size",
        "300",
        "--joined-dictionary",
    )
    assert r.returncode == 0, r.stderr
    assert (dest / "spm.model").is_file()
    assert (dest / "dict.de.txt").read_bytes() == (dest / "dict.en.txt").read_bytes()
    manifest = json.loads((dest / "preprocess.json").read_text())
    assert manifest["tokenizer"] == {
        "name": "sentencepiece",
        "model": "spm.model",
        "vocab_size": 300,
        "model_type": "unigram",
    }
    # later commands decode with the stored model: the first valid line comes back exactly
    from rnnkit.tokenizers import load_tokenizer

    tok = load_tokenizer("sentencepiece", dest)
    d = Dictionary.load(dest / "dict.en.txt")
    ids = IndexedDataset(dest / "valid.de-en.en")[0]
    first = (tmp_path / "val.en").read_text().split("\n")[0]
    assert tok.decode(d.decode(ids)) == first


@pytest.mark.shared_data
def test_tagging_on_atis_slice(tmp_path, shared_data, rnnkit_bin):
    for split, n in (("train", 400), ("valid", 50)):
        for name in ("seq.in", "seq.out", "label"):
            head(shared_data / "atis" / split / name, tmp_path / split / name, n)
    dest = tmp_path / "atis"
    r = rnnkit(
        rnnkit_bin,
        "preprocess",
        "--task",
        "tagging",
        "--trainpref",
        str(tmp_path / "train"),
        "--validpref",
        str(tmp_path / "valid"),
        "--destdir",
        str(dest),
    )
    assert r.returncode == 0, r.stderr
    tokens, tags = IndexedDataset(dest / "valid.in"), IndexedDataset(dest / "valid.tags")
    assert len(tokens) == len(tags) == 50
    assert (tokens.sizes == tags.sizes).all()  # one tag per token, no </s>
    assert IndexedDataset(dest / "valid.label").sizes.tolist() == [1] * 50
    labels = Dictionary.load(dest / "dict.label.txt")
    assert labels.symbols[4] == "atis_flight"


@pytest.mark.shared_data
def test_mismatched_tags_fail_with_file_and_line(tmp_path, shared_data, rnnkit_bin):
    for name in ("seq.in", "seq.out"):
        head(shared_data / "atis/train" / name, tmp_path / "train" / name, 20)
    out = tmp_path / "train/seq.out"
    lines = out.read_text().split("\n")
    lines[6] += " O"
    out.write_text("\n".join(lines))
    r = rnnkit(
        rnnkit_bin,
        "preprocess",
        "--task",
        "tagging",
        "--trainpref",
        str(tmp_path / "train"),
        "--destdir",
        str(tmp_path / "o"),
    )
    assert r.returncode == 2
    assert r.stderr.startswith(f"rnnkit: error: {out}:7: ") and r.stderr.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["train"]


def preprocess_hello(bin_: str, tmp: Path, tokenizer: str, *extra: str, env=None):
    """Preprocess ``hello world`` with ``tokenizer``; return the result and the dictionary."""
    (tmp / "t.txt").write_text("hello world\n")
    dest = tmp / f"out-{tokenizer}-{len(extra)}-{env is None}"
    args = ["--trainpref", str(tmp / "t.txt"), "--destdir", str(dest), "--tokenizer", tokenizer]
    r = rnnkit(bin_, "preprocess", *args, *extra, env=env)
    return r, (Dictionary.load(dest / "dict.txt") if r.returncode == 0 else None)


def test_entry_point_plugin_tokenizer_and_architecture(tmp_path, rnnkit_bin):
    env = {**os.environ, "PYTHONPATH": str(FIXTURES / "plugin_pkg")}
    r = rnnkit(rnnkit_bin, "models", env=env)
    assert r.returncode == 0 and "demo_plugin_tiny" in r.stdout
    r, d = preprocess_hello(rnnkit_bin, tmp_path, "reverse_demo", env=env)
    assert r.returncode == 0, r.stderr
    assert d.symbols[4:6] == ["dlrow", "olleh"]
    r, _ = preprocess_hello(rnnkit_bin, tmp_path, "reverse_demo")  # plugin not on the path
    assert r.returncode == 2 and "unknown tokenizer 'reverse_demo'" in r.stderr


def test_user_dir_plugin_tokenizer_and_architecture(tmp_path, rnnkit_bin):
    user_dir = str(FIXTURES / "user_dir_demo")
    r = rnnkit(rnnkit_bin, "models", "--user-dir", user_dir)
    assert r.returncode == 0 and "user_dir_tiny" in r.stdout
    r, d = preprocess_hello(rnnkit_bin, tmp_path, "upper_demo", "--user-dir", user_dir)
    assert r.returncode == 0, r.stderr
    assert d.symbols[4:6] == ["HELLO", "WORLD"]
    r = rnnkit(rnnkit_bin, "models", "no_such_arch", "--user-dir", user_dir)
    assert r.returncode == 2 and "user_dir_tiny" in r.stderr  # the valid names are listed
