"""``--spm-sample-lines``: sentencepiece trains on a seeded uniform sample of the train lines,
streamed to its trainer one line at a time, and on the whole file when it is no longer."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import sentencepiece as spm

from rnnkit.data.preprocess import PreprocessConfig, check_config, preprocess
from rnnkit.errors import RnnkitError
from rnnkit.tokenizers import SentencePieceTokenizer, select_lines
from rnnkit_cli.main import main

CJK = 0x4E00  # line i alone holds chr(CJK + i): the model's alphabet shows which lines it saw


def corpus(path: Path, n: int) -> Path:
    """``n`` distinct lines, each with one character found on no other line."""
    path.write_text("".join(f"w{i % 7} v{i % 5} {chr(CJK + i)}\n" for i in range(n)), "utf-8")
    return path


def seen_lines(model: bytes) -> set[int]:
    """Indices of the corpus lines whose own character is in the model (coverage 1.0 keeps all)."""
    sp = spm.SentencePieceProcessor(model_proto=model)
    pieces = (sp.id_to_piece(i) for i in range(sp.get_piece_size()))
    return {ord(c) - CJK for p in pieces for c in p if ord(c) >= CJK and c != "\u2581"}


def test_trains_on_exactly_the_seeded_sample(tmp_path):
    train = corpus(tmp_path / "train.txt", 2000)
    tok = SentencePieceTokenizer.train([train], tmp_path, vocab_size=200, sample_lines=100)
    expected = set(select_lines(range(2000), 100, 2000, seed=0))
    assert len(expected) == 100 and seen_lines(tok.model_proto) == expected
    again = SentencePieceTokenizer.train([train], tmp_path, vocab_size=200, sample_lines=100)
    assert again.model_proto == tok.model_proto  # same seed, same sample, same model
    other = SentencePieceTokenizer.train([train], tmp_path, 200, sample_lines=100, seed=1)
    assert seen_lines(other.model_proto) == set(select_lines(range(2000), 100, 2000, seed=1))
    assert seen_lines(other.model_proto) != expected


def test_selection_is_exact_ordered_and_uniform():
    counts: Counter[int] = Counter()
    for seed in range(2000):
        picked = list(select_lines(range(10), 3, 10, seed))
        assert len(picked) == 3 and picked == sorted(picked)
        counts.update(picked)
    # each of 10 items is picked with probability 3/10: 600 expected, sd about 20.5
    assert all(abs(counts[i] - 600) < 100 for i in range(10)), counts


def test_selection_streams_and_holds_nothing():
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield i

    out = 0
    for item in select_lines(source(), 50, 10_000):
        assert pulled == item + 1  # no read-ahead: each line is pulled when it is decided on
        out += 1
    assert out == 50


class Captured(Exception):
    pass


def capture_trainer(monkeypatch) -> dict:
    """Replace sentencepiece's trainer with one that records its arguments and lines pulled."""
    seen: dict = {}

    def fake(**kwargs):
        seen.update(kwargs)
        it = kwargs.get("sentence_iterator")
        if it is not None:
            seen["iterator_type"] = type(it)
            seen["lines"] = list(it)
        raise Captured

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", fake)
    return seen


def test_sample_is_streamed_to_the_trainer_and_no_sample_reads_the_file(tmp_path, monkeypatch):
    train = corpus(tmp_path / "train.txt", 2000)
    seen = capture_trainer(monkeypatch)
    with pytest.raises(Captured):
        SentencePieceTokenizer.train([train], tmp_path, 200, sample_lines=100)
    assert "input" not in seen and "input_sentence_size" not in seen
    assert seen["iterator_type"] not in (list, tuple)  # an iterator, not the lines in a list
    lines = train.read_bytes().split(b"\n")
    assert seen["lines"] == [lines[i] for i in select_lines(range(2000), 100, 2000)]
    for sample in (0, 2000, 10_000_000):  # no sample: the call of before the option existed
        seen.clear()
        with pytest.raises(Captured):
            SentencePieceTokenizer.train([train], tmp_path, 200, sample_lines=sample)
        assert seen["input"] == str(train) and "sentence_iterator" not in seen
        assert "input_sentence_size" not in seen and "shuffle_input_sentence" not in seen


def spm_run(tmp_path: Path, train: Path, name: str, **options) -> tuple[Path, dict]:
    dest = tmp_path / name
    options = {"tokenizer": "sentencepiece", "spm_vocab_size": 200, **options}
    return dest, preprocess(PreprocessConfig(trainpref=str(train), destdir=str(dest), **options))


def test_preprocess_records_the_sample_and_workers_stay_byte_identical(tmp_path):
    train = corpus(tmp_path / "train.txt", 2000)
    one, manifest = spm_run(tmp_path, train, "w1", spm_sample_lines=100)
    assert manifest["tokenizer"]["sample_lines"] == 100
    assert manifest["options"]["spm_sample_lines"] == 100
    assert seen_lines((one / "spm.model").read_bytes()) == set(select_lines(range(2000), 100, 2000))
    two, _ = spm_run(tmp_path, train, "w2", spm_sample_lines=100, workers=2)
    # (spm.model itself names the folder it was trained in, so it differs by that path)
    for name in ("dict.txt", "train.bin", "train.idx"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    full, manifest = spm_run(tmp_path, train, "all", spm_sample_lines=2000, spm_vocab_size=2100)
    assert "sample_lines" not in manifest["tokenizer"]  # the whole file: nothing was sampled
    assert seen_lines((full / "spm.model").read_bytes()) == set(range(2000))


def test_bad_sample_sizes_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(RnnkitError, match=r"--spm-sample-lines must be 0 \(all lines\) or more"):
        check_config(PreprocessConfig(trainpref="t", spm_sample_lines=-1))
    with pytest.raises(RnnkitError, match="--spm-sample-lines is for --tokenizer sentencepiece"):
        check_config(PreprocessConfig(trainpref="t", spm_sample_lines=5))
    check_config(PreprocessConfig(trainpref="t"))  # the default alone is no error
    train = corpus(tmp_path / "t.txt", 10)
    argv = ["rnnkit", "preprocess", "--trainpref", str(train), "--destdir", str(tmp_path / "o")]
    monkeypatch.setattr(
        sys, "argv", [*argv, "--tokenizer", "sentencepiece", "--spm-sample-lines", "-3"]
    )
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "got -3" in err
    assert not (tmp_path / "o").exists()
