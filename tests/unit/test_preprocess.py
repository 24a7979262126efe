"""preprocess() called directly on tiny files: outputs per task, workers, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.binarized import IndexedDataset
from rnnkit.data.corpus import line_offsets
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError


def run(tmp: Path, **options) -> tuple[Path, dict]:
    dest = tmp / options.pop("destdir", "out")
    return dest, preprocess(PreprocessConfig(destdir=str(dest), **options))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def decoded(dest: Path, prefix: str, dict_name: str) -> list[list[str]]:
    d = Dictionary.load(dest / dict_name)
    ds = IndexedDataset(dest / prefix)
    return [[d[int(i)] for i in ds[k]] for k in range(len(ds))]


def test_drop_empty_drops_empty_train_lines_and_keeps_empty_valid_lines(tmp_path):
    train = write(tmp_path / "train.txt", "a b a\n\nc a\n   \n")
    valid = write(tmp_path / "valid.txt", "a\n\nz\n")
    dest, manifest = run(tmp_path, trainpref=str(train), validpref=(str(valid),), keep_empty=False)
    assert decoded(dest, "train", "dict.txt") == [["a", "b", "a", "</s>"], ["c", "a", "</s>"]]
    assert decoded(dest, "valid", "dict.txt") == [["a", "</s>"], ["</s>"], ["<unk>", "</s>"]]
    train_stats = manifest["splits"]["train"]
    assert (train_stats["lines"], train_stats["sequences"], train_stats["dropped_empty"]) == (
        4,
        2,
        2,
    )
    assert manifest["splits"]["valid"]["outputs"]["valid"]["unk_rate"] == pytest.approx(1 / 5)
    on_disk = json.loads((dest / "preprocess.json").read_text())
    assert on_disk == manifest and on_disk["options"]["task"] == "lm"
    assert len(on_disk["splits"]["train"]["inputs"][str(train)]) == 64  # sha256 hex
    assert sorted(p.name for p in dest.iterdir()) == [
        "dict.txt",
        "preprocess.json",
        "train.bin",
        "train.idx",
        "valid.bin",
        "valid.idx",
    ]


def test_keep_empty_keeps_blank_train_lines_for_char_lms(tmp_path):
    train = write(tmp_path / "train.txt", "ab\n\nb\n")
    dest, manifest = run(tmp_path, trainpref=str(train), tokenizer="char", keep_empty=True)
    assert decoded(dest, "train", "dict.txt") == [["a", "b", "</s>"], ["</s>"], ["b", "</s>"]]
    assert manifest["splits"]["train"]["dropped_empty"] == 0


def test_char_lm_round_trips_text_exactly(tmp_path):
    text = "First Citizen:\nBefore we proceed, héllo\t wörld!\n"
    dest, _ = run(tmp_path, trainpref=str(write(tmp_path / "t.txt", text)), tokenizer="char")
    rows = decoded(dest, "train", "dict.txt")
    assert "".join("\n" if t == "</s>" else t for row in rows for t in row) == text


def test_translation_joined_dictionary_and_several_valid_sets(tmp_path):
    for split, de, en in [
        ("train", "ein haus\nzwei\n", "a house\ntwo\n"),
        ("v0", "haus\n", "house\n"),
        ("v1", "ein\n", "a\n"),
    ]:
        write(tmp_path / f"{split}.de", de)
        write(tmp_path / f"{split}.en", en)
    pref = str(tmp_path)
    dest, manifest = run(
        tmp_path,
        task="translation",
        source_lang="de",
        target_lang="en",
        trainpref=f"{pref}/train",
        validpref=(f"{pref}/v0", f"{pref}/v1"),
        joined_dictionary=True,
    )
    assert (dest / "dict.de.txt").read_bytes() == (dest / "dict.en.txt").read_bytes()
    assert "house" in Dictionary.load(dest / "dict.de.txt")
    assert decoded(dest, "valid1.de-en.de", "dict.de.txt") == [["ein", "</s>"]]
    assert decoded(dest, "train.de-en.en", "dict.en.txt")[0] == ["a", "house", "</s>"]
    assert set(manifest["splits"]) == {"train", "valid", "valid1"}


def test_tagging_aligns_tags_to_tokens_and_maps_unseen_tags_to_unk(tmp_path):
    write(tmp_path / "train/seq.in", "fly to boston\nhi\n")
    write(tmp_path / "train/seq.out", "O O B-city\nO\n")
    write(tmp_path / "train/label", "flight\ngreet\n")
    write(tmp_path / "valid/seq.in", "to denver\n")
    write(tmp_path / "valid/seq.out", "O B-newtag\n")
    write(tmp_path / "valid/label", "other\n")
    dest, _ = run(
        tmp_path,
        task="tagging",
        trainpref=str(tmp_path / "train"),
        validpref=(str(tmp_path / "valid"),),
    )
    assert decoded(dest, "train.in", "dict.in.txt")[0] == ["fly", "to", "boston"]  # no </s>
    assert decoded(dest, "train.tags", "dict.tags.txt")[0] == ["O", "O", "B-city"]
    assert decoded(dest, "train.label", "dict.label.txt") == [["flight"], ["greet"]]
    assert decoded(dest, "valid.tags", "dict.tags.txt") == [["O", "<unk>"]]
    assert decoded(dest, "valid.label", "dict.label.txt") == [["<unk>"]]


def test_threshold_nwords_and_reused_dictionary(tmp_path):
    train = write(tmp_path / "t.txt", "a a a b b c\n")
    dest, _ = run(tmp_path, trainpref=str(train), threshold=2, padding_factor=1)
    assert Dictionary.load(dest / "dict.txt").symbols[4:] == ["a", "b"]
    dest2, _ = run(tmp_path, destdir="o2", trainpref=str(train), nwords=5, padding_factor=1)
    assert Dictionary.load(dest2 / "dict.txt").symbols[4:] == ["a"]
    other = write(tmp_path / "o.txt", "c c\n")
    dest3, _ = run(tmp_path, destdir="o3", testpref=(str(other),), srcdict=str(dest / "dict.txt"))
    assert (dest3 / "dict.txt").read_bytes() == (dest / "dict.txt").read_bytes()
    assert decoded(dest3, "test", "dict.txt") == [["<unk>", "<unk>", "</s>"]]


def test_workers_two_is_byte_identical_to_one(tmp_path):
    rng = np.random.default_rng(0)
    lines = [" ".join(f"w{i}" for i in rng.integers(0, 50, rng.integers(0, 9))) for _ in range(301)]
    train = write(tmp_path / "t.txt", "\n".join(lines) + "\n")
    valid = write(tmp_path / "v.txt", "\n".join(lines[:77]))  # no final newline
    outs = [
        run(tmp_path, destdir=f"w{w}", trainpref=str(train), validpref=(str(valid),), workers=w)[0]
        for w in (1, 2, 3)
    ]
    for name in ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
        assert (outs[0] / name).read_bytes() == (outs[2] / name).read_bytes()


def test_line_offsets(tmp_path):
    path = write(tmp_path / "x", "ab\n\ncde\nf")
    assert line_offsets(path, [0, 1, 2, 3]) == [0, 3, 4, 8]


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("files", "options", "message"),
    [
        ({}, {"trainpref": "missing.txt"}, "missing.txt: no such file"),
        ({"t.txt": ""}, {"trainpref": "t.txt"}, "t.txt: the train file is empty"),
        (
            {"t.txt": "\n \n"},
            {"trainpref": "t.txt", "keep_empty": False},
            "t.txt: the train file has only empty lines",
        ),
        (
            {"t.txt": "ok\nbad \xff\n".encode("latin-1")},
            {"trainpref": "t.txt"},
            "t.txt:2: invalid UTF-8",
        ),  # noqa: E501
        (
            {"t.de": "a\nb\n", "t.en": "a\n"},
            {"task": "translation", "source_lang": "de", "target_lang": "en", "trainpref": "t"},
            "t.de:2: no matching line in ",
        ),
        (
            {"d/seq.in": "a b\nc\n", "d/seq.out": "O O\nO O\n"},
            {"task": "tagging", "trainpref": "d"},
            "d/seq.out:2: 2 tags for 1 tokens on line 2 of ",
        ),
        ({"t.txt": "a\n"}, {"trainpref": "t.txt", "tokenizer": "chr"}, "did you mean 'char'"),
        ({"t.txt": "a\n"}, {"trainpref": "t.txt", "workers": 0}, "must be at least 1"),
        ({"t.txt": "a\n"}, {"task": "translation", "trainpref": "t"}, "needs -s/--source-lang"),
    ],
)
def test_bad_input_is_one_located_error_and_leaves_nothing(
    tmp_path, monkeypatch, files, options, message
):
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        write(tmp_path / name, content)
    with pytest.raises(RnnkitError, match=message) as e:
        preprocess(PreprocessConfig(destdir="out", **options))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_error_in_a_later_chunk_cleans_up_with_workers(tmp_path):
    lines = ["a b"] * 50 + ["bad \udcff"] + ["c"] * 49
    train = write(tmp_path / "t.txt", "\n".join(lines).encode("utf-8", "surrogateescape"))
    with pytest.raises(RnnkitError, match="t.txt:51: invalid UTF-8"):
        run(tmp_path, trainpref=str(train), workers=2)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    dest, _ = run(tmp_path, trainpref=str(train), workers=2, encoding_errors="replace")
    assert "\ufffd" in Dictionary.load(dest / "dict.txt")


def test_existing_destdir_is_refused_unless_force(tmp_path):
    train = write(tmp_path / "t.txt", "a\n")
    dest = tmp_path / "out"
    write(dest / "keep.txt", "precious")
    with pytest.raises(RnnkitError, match="already exists"):
        run(tmp_path, trainpref=str(train))
    assert (dest / "keep.txt").exists()
    run(tmp_path, trainpref=str(train), force=True)
    assert not (dest / "keep.txt").exists() and (dest / "train.bin").exists()
    assert leftovers(tmp_path) == []
