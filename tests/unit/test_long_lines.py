"""Long and odd lines: the --max-positions rule of raw-line scoring, tagging and classification,
batches bounded by tokens, a byte order mark dropped and a NUL byte reported by every line reader,
and reading a pipe."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pytest
import torch

from rnnkit import reporting
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.io import read_lines, split_lines, stream_lines
from rnnkit.tasks import lm, load_task
from rnnkit.tasks.lines import TOKENS_PER_BATCH, LineLimit, token_batches
from tests.unit.test_tagging import TINY as TAGGER
from tests.unit.test_tagging import make_data
from tests.unit.test_training import make_run

LONG = "ab" * 100_000  # a 200,000-character line
CPU = torch.device("cpu")


class Recorder(reporting.Reporter):
    """A reporter that keeps the warnings."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    recorder = Recorder()
    monkeypatch.setattr(reporting, "_current", recorder)
    return recorder.warnings


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("lm"))  # untrained: only shapes and sums matter


@pytest.fixture(scope="module")
def tagging_task(tmp_path_factory):
    return load_task(make_data(tmp_path_factory.mktemp("tagging")))


def test_lm_long_line_is_truncated_with_a_warning_naming_it(lm_run, warnings):
    task, model = lm_run.task, lm_run.model
    lines = ["abc", LONG, "", "cab"]
    limit = LineLimit(source_name="f.txt", first_line=10)
    out = task.score_lines(model, lines, CPU, limit=limit)
    assert len(out) == 4 and [r["tokens"] for r in out] == [4, 1024, 1, 4]
    assert warnings == [
        "f.txt:11: 200001 tokens exceed --max-positions 1024; truncated to the first 1024"
    ]
    # the first 1024 characters, scored without the </s> that would follow them
    prefix = task.score_lines(model, [LONG[:1024]], CPU, limit=LineLimit(2000))[0]
    assert prefix["tokens"] == 1025
    assert out[1]["logprob"] == pytest.approx(prefix["logprob"] - eos_logprob(task, model), 1e-4)
    short = task.score_lines(model, ["abc", "", "cab"], CPU)
    for a, b in zip([out[0], out[2], out[3]], short, strict=True):
        assert a["logprob"] == pytest.approx(b["logprob"], rel=1e-5)
    skipped = task.score_lines(model, lines, CPU, limit=LineLimit(skip_invalid=True))
    assert skipped[1] is None and [r["tokens"] for r in skipped if r] == [4, 1, 4]
    assert warnings[-1].endswith("exceed --max-positions 1024; skipped")


def eos_logprob(task, model) -> float:
    """log P(</s> | the 1024 characters of LONG), to compare a truncated line with its prefix."""
    d = task.dictionary
    ids = d.encode(list(LONG[:1024]), append_eos=True)
    inputs = torch.tensor([[d.eos_index, *ids[:-1]]])
    with torch.inference_mode():
        logits, _ = model(inputs, None)
    return logits[0, -1].log_softmax(-1)[d.eos_index].item()


def test_lm_windows_equal_one_pass(lm_run, monkeypatch):
    lines = ["abcab" * 40, "bca", "a" * 77]
    whole = lm_run.task.score_lines(lm_run.model, lines, CPU)
    monkeypatch.setattr(lm, "LOGITS_PER_WINDOW", 1)  # one column per forward, state carried
    windows = lm_run.task.score_lines(lm_run.model, lines, CPU)
    for a, b in zip(whole, windows, strict=True):
        assert a["tokens"] == b["tokens"] and a["logprob"] == pytest.approx(b["logprob"], rel=1e-5)


def test_tagger_and_classifier_truncate_or_skip_long_lines(tagging_task, warnings):
    task = tagging_task
    model, _ = task.build_model("rnn_tagger", {**TAGGER, "label-head": True})
    lines = ["a b c", " ".join(["a"] * 100_000), "d"]
    out = task.tag_lines(model, lines, CPU, limit=LineLimit(max_positions=50, source_name="x"))
    assert [len(r["tags"]) for r in out] == [3, 50, 1] and len(out[1]["tokens"]) == 50
    assert warnings == ["x:2: 100000 tokens exceed --max-positions 50; truncated to the first 50"]
    assert out[0] == task.tag_lines(model, ["a b c"], CPU)[0]
    skip = LineLimit(max_positions=50, skip_invalid=True)
    assert task.tag_lines(model, lines, CPU, limit=skip)[1] is None
    labels = task.classify_lines(model, lines, CPU, limit=skip)
    assert labels[1] is None and labels[0]["label"] in ("has_c", "no_c")


def test_batches_are_bounded_by_tokens_not_by_the_longest_line():
    sizes = [3] * 100 + [200_000] + [500] * 40
    batches = token_batches(sizes, 64)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    assert [100] in batches  # the long line goes alone
    for b in batches:
        assert len(b) <= 64
        assert len(b) == 1 or len(b) * max(sizes[i] for i in b) <= TOKENS_PER_BATCH
    assert token_batches([], 8) == []
    with pytest.raises(RnnkitError, match="--max-positions must be at least 1"):
        LineLimit(max_positions=0)


def test_every_reader_drops_a_bom_with_one_warning(tmp_path, warnings):
    data = b"\xef\xbb\xbfhello world\nok\n"
    f = tmp_path / "bom.txt"
    f.write_bytes(data)
    assert [t for _, t in read_lines(f)] == ["hello world", "ok"]
    assert [t for _, t in read_lines(f)] == ["hello world", "ok"]  # read again: no new warning
    assert split_lines(data, "piped") == ["hello world", "ok"]
    assert [t for _, t in stream_lines(io.BytesIO(data), "streamed")] == ["hello world", "ok"]
    assert warnings == [f"{name}: starts with a UTF-8 byte order mark; dropped"
                        for name in (f, "piped", "streamed")]  # fmt: skip
    assert split_lines(b"a\n\xef\xbb\xbfb\n", "later") == ["a", "\ufeffb"]  # only at the start


def test_a_nul_byte_is_reported_with_its_line(tmp_path, warnings):
    f = tmp_path / "nul.txt"
    f.write_bytes(b"fine\nbad\x00line\n")
    assert [t for _, t in read_lines(f)] == ["fine", "bad\x00line"]
    assert warnings == [f"{f}:2: NUL byte at byte 3 of the line"]
    split_lines(b"\x00\n" * 7, "many")
    assert len([w for w in warnings if w.startswith("many:")]) == 5
    assert warnings[-1].endswith("further ones in this file are not reported")


def test_read_lines_reads_a_pipe(warnings):
    read, write = os.pipe()

    def feed() -> None:
        with os.fdopen(write, "wb") as w:
            w.write(b"one\ntwo\n")

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        assert [t for _, t in read_lines(f"/dev/fd/{read}")] == ["one", "two"]
    finally:
        writer.join()
        os.close(read)


def test_preprocess_drops_a_bom(tmp_path, warnings):
    train = tmp_path / "train.txt"
    train.write_bytes("\ufeffhello world\nhello there\n".encode())
    dest = tmp_path / "data"
    preprocess(PreprocessConfig(task="lm", trainpref=str(train), destdir=str(dest)))
    words = Dictionary.load(dest / "dict.txt").symbols
    assert "hello" in words and not [w for w in words if w.startswith("\ufeff")]
    assert warnings == [f"{train}: starts with a UTF-8 byte order mark; dropped"]
    assert np.sum(load_task(dest).load_stream("train").numpy() == words.index("hello")) == 2
