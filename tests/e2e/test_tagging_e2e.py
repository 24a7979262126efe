"""preprocess → train → tag → score for tagging through the installed ``rnnkit`` command.

A slice of ATIS (``../shared/data/atis``; skipped where absent) is preprocessed and a tiny joint
tagger trained on it for two epochs; its checkpoint then tags the raw valid lines from Python
(``task.tag_lines``) and ``rnnkit score`` scores those tags and intents against the raw files.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import shared_path  # tests/ is on sys.path (rootdir conftest, no __init__)

import rnnkit
from tests.helpers import run_rnnkit

pytestmark = pytest.mark.e2e

TINY = ["--embed-dim", "16", "--hidden-size", "16", "--dropout", "0"]


def run(rnnkit_bin: str, *args: str) -> subprocess.CompletedProcess:
    return run_rnnkit(rnnkit_bin, *args)


def head(src: Path, dst: Path, n: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:n]))


def atis_slice(root: Path, split: str, n: int) -> Path:
    for name in ("seq.in", "seq.out", "label"):
        head(shared_path("atis", split, name), root / split / name, n)
    return root / split


@pytest.mark.shared_data
def test_atis_slice_preprocess_train_tag_score(tmp_path, rnnkit_bin):
    train, valid = atis_slice(tmp_path, "train", 600), atis_slice(tmp_path, "valid", 100)
    data, save = tmp_path / "data", tmp_path / "ckpt"
    run(rnnkit_bin, "preprocess", "--task", "tagging", "--trainpref", str(train),
        "--validpref", str(valid), "--destdir", str(data))  # fmt: skip
    proc = run(rnnkit_bin, "train", str(data), "--arch", "atis_bilstm", "--save-dir", str(save),
               "--optimizer", "adam", "--lr", "0.01", "--batch-size", "16", "--max-epoch", "2",
               "--threads", "1", "--best-checkpoint-metric", "f1",
               "--maximize-best-checkpoint-metric", *TINY)  # fmt: skip
    assert "| valid loss" in proc.stderr and " f1 " in proc.stderr and "label_acc" in proc.stderr
    events = [json.loads(line) for line in (save / "train_log.jsonl").open()]
    valid_events = [e for e in events if e["event"] == "valid"]
    assert len(valid_events) == 2
    assert valid_events[-1]["f1"] > 30 and valid_events[-1]["label_acc"] > 60  # 2 tiny epochs

    model = rnnkit.load(save / "checkpoint_last.pt", device="cpu")
    lines = (valid / "seq.in").read_text().splitlines()
    out = model.task.tag_lines(model.model, lines, torch.device("cpu"))
    (tmp_path / "hyp.tags").write_text("".join(" ".join(r["tags"]) + "\n" for r in out))
    (tmp_path / "hyp.label").write_text("".join(r["label"] + "\n" for r in out))

    tags = run(rnnkit_bin, "score", "--sys", str(tmp_path / "hyp.tags"), "--ref",
               str(valid / "seq.out"), "--metric", "f1,acc", "--json")  # fmt: skip
    f1, acc = json.loads(tags.stdout)
    assert (f1["name"], acc["name"], acc["total"]) == (
        "F1",
        "Acc",
        sum(map(len, map(str.split, lines))),
    )
    # The raw reference keeps tags the 600-line train slice never saw (<unk> in the binarized
    # valid set), so the two F1s differ a little; on seen tags they agree exactly (unit test).
    assert abs(f1["score"] - valid_events[-1]["f1"]) < 5
    labels = run(rnnkit_bin, "score", "--sys", str(tmp_path / "hyp.label"), "--ref",
                 str(valid / "label"), "--metric", "label_acc")  # fmt: skip
    assert labels.stdout.startswith("LabelAcc = ")


def test_classification_preprocess_and_train(tmp_path, rnnkit_bin):
    folder = tmp_path / "raw"
    folder.mkdir()
    lines = ["a b c", "c c", "b a", "a a b", "b c a", "b b"] * 10
    (folder / "seq.in").write_text("".join(line + "\n" for line in lines))
    (folder / "label").write_text("".join(("yes" if "c" in s else "no") + "\n" for s in lines))
    data, save = tmp_path / "data", tmp_path / "ckpt"
    run(rnnkit_bin, "preprocess", "--task", "classification", "--trainpref", str(folder),
        "--validpref", str(folder), "--destdir", str(data))  # fmt: skip
    proc = run(rnnkit_bin, "train", str(data), "--arch", "intent_bilstm", "--save-dir", str(save),
               "--optimizer", "adam", "--lr", "0.05", "--batch-size", "8", "--max-epoch", "4",
               "--threads", "1", *TINY)  # fmt: skip
    assert "| valid loss" in proc.stderr and "acc" in proc.stderr
    model = rnnkit.load(save / "checkpoint_last.pt", device="cpu")
    out = model.task.classify_lines(model.model, ["a c", "b a"], torch.device("cpu"))
    assert [r["label"] for r in out] == ["yes", "no"]
