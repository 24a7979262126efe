"""Tagging and classification through the installed ``rnnkit``: preprocess → train → generate
(raw stdin, line-aligned, and a binarized split) → score, on the toy problem of
``tests/unit/test_tagging.py`` (no shared data needed), with tiny models (hidden 8)."""

from __future__ import annotations

import json
import select
import subprocess
from pathlib import Path

import pytest

import rnnkit
from rnnkit.errors import RnnkitError
from tests.helpers import run_main, run_rnnkit
from tests.unit.test_tagging import toy, write_split

pytestmark = pytest.mark.e2e
TINY = ["--embed-dim", "8", "--hidden-size", "8", "--dropout", "0"]
TRAIN = ["--optimizer", "adam", "--lr", "0.05", "--batch-size", "8", "--threads", "1",
         "--no-epoch-checkpoints"]  # fmt: skip
LINES = ["a b c", "", "c d a b e", "e"]  # an empty line must give an empty line


run = run_rnnkit  # tests/helpers.py


def train(rnnkit_bin: str, root: Path, task: str, name: str, *args: str) -> tuple[Path, Path]:
    """Preprocess the toy folders for ``task`` and train a model on them: (data, checkpoint)."""
    data, save = root / f"data-{task}", root / name
    if not data.exists():
        run(rnnkit_bin, "preprocess", "--task", task, "--trainpref", str(root / "train"),
            "--validpref", str(root / "valid"), "--destdir", str(data))  # fmt: skip
    run(rnnkit_bin, "train", str(data), "--save-dir", str(save), *TRAIN, *TINY, *args)
    return data, save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    write_split(root / "train", toy(160, 1))
    write_split(root / "valid", toy(40, 2))
    return root


@pytest.fixture(scope="module")
def tagger(toy_root, rnnkit_bin) -> tuple[Path, Path]:
    return train(rnnkit_bin, toy_root, "tagging", "joint", "--arch", "rnn_tagger",
                 "--label-head", "true", "--max-epoch", "3")  # fmt: skip


@pytest.fixture(scope="module")
def classifier(toy_root, rnnkit_bin) -> tuple[Path, Path]:
    return train(rnnkit_bin, toy_root, "classification", "classifier", "--arch",
                 "rnn_classifier", "--max-epoch", "3")  # fmt: skip


def test_tagging_raw_stdin_is_line_aligned_and_equals_the_python_api(tagger, rnnkit_bin):
    _, ckpt = tagger
    stdin = "\n".join(LINES) + "\n"
    expected = rnnkit.load(ckpt, device="cpu").tag(LINES)
    for extra in ([], ["--buffer-size", "1"]):
        out = run(rnnkit_bin, "generate", "--path", str(ckpt), "-i", "-", "--threads", "1",
                  *extra, stdin=stdin).stdout  # fmt: skip
        assert out == "".join((" ".join(r["tags"]) if r["tokens"] else "") + "\n" for r in expected)
        assert [len(line.split()) for line in out.splitlines()] == [3, 0, 5, 1]
    labelled = run(rnnkit_bin, "generate", "--path", str(ckpt), "-i", "-", "--print-label",
                   "--threads", "1", stdin=stdin).stdout.splitlines()  # fmt: skip
    assert labelled[1] == ""
    for line, r in zip(labelled[::2], expected[::2], strict=True):
        assert line == f"{r['label']}\t{' '.join(r['tags'])}"
        assert r["label"] in ("has_c", "no_c")


def test_buffer_size_one_answers_each_line_before_reading_the_next(tagger, rnnkit_bin):
    proc = subprocess.Popen(
        [rnnkit_bin, "generate", "--path", str(tagger[1]), "-i", "-", "--buffer-size", "1",
         "--print-label", "--threads", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line, fields in (("c a b", 2), ("", 1), ("d", 2)):
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready, "no output while stdin is still open"
            answer = proc.stdout.readline()
            assert answer.endswith("\n") and len(answer[:-1].split("\t")) == fields
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_tagging_binarized_split_and_score(tagger, toy_root, rnnkit_bin):
    data, ckpt = tagger
    out = run(rnnkit_bin, "generate", str(data), "--path", str(ckpt), "--gen-subset", "valid",
              "--threads", "1").stdout.splitlines()  # fmt: skip
    kinds = {k: [line.split("\t") for line in out if line.startswith(k + "-")]
             for k in ("S", "T", "H", "TL", "HL")}  # fmt: skip
    assert all(len(rows) == 40 for rows in kinds.values())
    ids = sorted(int(row[0][2:]) for row in kinds["S"])
    assert ids == list(range(40))
    gold = (toy_root / "valid" / "seq.out").read_text().splitlines()
    assert {int(i[2:]): t for i, t in kinds["T"]} == dict(enumerate(gold))
    for (_, tokens), (_, tags) in zip(kinds["S"], kinds["H"], strict=True):
        assert len(tags.split()) == len(tokens.split())
    assert all(0 < float(p) <= 1 for _, _, p in kinds["HL"])

    assert out[-1].startswith("Generate valid: F1 = ")
    assert " | Acc = " in out[-1] and " | LabelAcc = " in out[-1]
    metrics = json.loads(run(rnnkit_bin, "score", str(data), "--path", str(ckpt), "--subset",
                             "valid", "--json").stdout)  # fmt: skip
    assert f"F1 = {metrics['f1']:.2f} " in out[-1]
    assert f"Acc = {metrics['acc']:.2f} " in out[-1]
    assert f"LabelAcc = {metrics['label_acc']:.2f} " in out[-1]
    text = run(rnnkit_bin, "score", str(data), "--path", str(ckpt), "--subset", "valid").stdout
    assert text.startswith("valid: loss ") and f"| f1 {metrics['f1']:.2f} |" in text
    assert "| label_acc " in text and "| sent_acc " in text

    quiet = run(rnnkit_bin, "generate", str(data), "--path", str(ckpt), "--gen-subset", "valid",
                "--quiet", "--threads", "1").stdout  # fmt: skip
    assert quiet == out[-1] + "\n"


def test_classification_raw_binarized_and_score(classifier, toy_root, rnnkit_bin):
    data, ckpt = classifier
    raw = run(rnnkit_bin, "generate", "--path", str(ckpt), "-i", "-", "--threads", "1",
              stdin="\n".join(LINES) + "\n").stdout  # fmt: skip
    expected = rnnkit.load(ckpt, device="cpu").classify(LINES)
    assert raw == "".join((r["label"] if r["tokens"] else "") + "\n" for r in expected)
    out = run(rnnkit_bin, "generate", str(data), "--path", str(ckpt), "--gen-subset", "valid",
              "--threads", "1").stdout.splitlines()  # fmt: skip
    assert sum(line.startswith("TL-") for line in out) == 40
    assert sum(line.startswith("HL-") for line in out) == 40
    assert not any(line.startswith(("T-", "H-")) for line in out)
    metrics = json.loads(run(rnnkit_bin, "score", str(data), "--path", str(ckpt), "--json").stdout)
    assert out[-1].startswith(f"Generate valid: LabelAcc = {metrics['acc']:.2f} (")
    assert metrics["acc"] >= 80  # 3 epochs of a toy problem: "has a c"


def test_misuse_is_a_one_line_error(toy_root, tagger, rnnkit_bin, tmp_path):
    data, with_head = tagger
    _, headless = train(rnnkit_bin, toy_root, "tagging", "headless", "--arch", "rnn_tagger",
                        "--max-update", "1")  # fmt: skip
    proc = run_main(
        "generate", "--path", str(headless), "-i", "-", "--print-label", stdin="a b\n", check=False
    )  # in-process: one command's exit code and error line
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--print-label: this tagger has no label head" in proc.stderr
    with pytest.raises(RnnkitError, match="classify\\(\\) needs a classification model or a"):
        rnnkit.load(headless, device="cpu").classify(["a"])
    bptt = run_main("score", str(data), "--path", str(with_head), "--bptt", "5",
                    check=False)  # fmt: skip
    assert bptt.returncode == 2 and "--bptt applies to language models" in bptt.stderr


def test_a_translation_checkpoint_refuses_tag_and_classify(tmp_path, rnnkit_bin):
    for side, text in (("src", "a b c\nb c\n"), ("tgt", "c b a\nc b\n")):
        (tmp_path / f"train.{side}").write_text(text * 4)
    run(rnnkit_bin, "preprocess", "--task", "translation", "-s", "src", "-t", "tgt",
        "--trainpref", str(tmp_path / "train"), "--validpref", str(tmp_path / "train"),
        "--destdir", str(tmp_path / "data"))  # fmt: skip
    run(rnnkit_bin, "train", str(tmp_path / "data"), "--arch", "seq2seq", "--encoder-embed-dim",
        "8", "--encoder-hidden-size", "8", "--decoder-embed-dim", "8", "--decoder-hidden-size",
        "8", "--save-dir", str(tmp_path / "ckpt"), "--max-update", "1", "--batch-size", "4",
        "--threads", "1")  # fmt: skip
    model = rnnkit.load(tmp_path / "ckpt" / "checkpoint_last.pt", device="cpu")
    with pytest.raises(RnnkitError, match="^tag\\(\\) needs a model of task tagging; this "
                                          "checkpoint is task 'translation'$"):  # fmt: skip
        model.tag(["a b"])
    with pytest.raises(RnnkitError, match="^classify\\(\\) needs a model of task classification"):
        model.classify(["a b"])
    assert isinstance(model.translate(["a b"], beam=1)[0], str)
