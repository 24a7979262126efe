"""fairseq data directories, both ways: files written by fairseq 0.12.2's own code
(tests/fixtures/fairseq_data, made by its make.sh) read by rnnkit, rnnkit's output byte-identical
to fairseq's for the same text, dict.txt lines as fairseq reads them, and the task and languages
of a data-bin inferred from its file names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.binarized import IndexedDataset, best_dtype
from rnnkit.data.preprocess import PreprocessConfig, preprocess
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.tasks import data_task_name, load_task, read_data_meta

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fairseq_data"
RAW = FIXTURES / "raw"
FAIRSEQ_PYTHON = Path("/tmp/peers/fairseq/venv/bin/python")


def same_bytes(ours: Path, theirs: Path, names: list[str]) -> None:
    for name in names:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


def test_lm_preprocess_is_byte_identical_to_fairseq_and_keeps_empty_lines(tmp_path):
    dest = tmp_path / "lm"
    manifest = preprocess(PreprocessConfig(destdir=str(dest), trainpref=str(RAW / "lm.train"),
                                           validpref=(str(RAW / "lm.valid"),)))  # fmt: skip
    same_bytes(dest, FIXTURES / "lm", ["dict.txt", "train.bin", "train.idx", "valid.bin",
                                       "valid.idx"])  # fmt: skip
    train = IndexedDataset(dest / "train")
    assert len(train) == 7 and list(train[1]) == [2]  # an empty line is a lone </s>
    assert manifest["splits"]["train"]["dropped_empty"] == 0
    assert manifest["options"]["keep_empty"] is True


def test_translation_preprocess_is_byte_identical_to_fairseq(tmp_path):
    dest = tmp_path / "tr"
    preprocess(PreprocessConfig(task="translation", source_lang="de", target_lang="en",
                                destdir=str(dest), trainpref=str(RAW / "tr.train"),
                                validpref=(str(RAW / "tr.valid"),)))  # fmt: skip
    names = [p.name for p in (FIXTURES / "translation").iterdir()]
    assert len(names) == 10
    same_bytes(dest, FIXTURES / "translation", names)


def test_drop_empty_still_drops_lm_lines_and_sentence_tasks_drop_by_default(tmp_path):
    manifest = preprocess(PreprocessConfig(destdir=str(tmp_path / "lm"), keep_empty=False,
                                           trainpref=str(RAW / "lm.train")))  # fmt: skip
    assert manifest["splits"]["train"]["dropped_empty"] == 3
    (tmp_path / "t.de").write_text("a b\n\nc\n")
    (tmp_path / "t.en").write_text("x\ny\nz\n")
    manifest = preprocess(PreprocessConfig(task="translation", source_lang="de", target_lang="en",
                                           destdir=str(tmp_path / "tr"),
                                           trainpref=str(tmp_path / "t")))  # fmt: skip
    assert manifest["splits"]["train"]["dropped_empty"] == 1
    assert manifest["options"]["keep_empty"] is False


def test_uint32_written_by_fairseq_reads_and_large_vocabularies_write_it(tmp_path):
    ds = IndexedDataset(FIXTURES / "uint32" / "train")
    assert ds.dtype == np.uint32
    assert [list(ds[i]) for i in range(3)] == [[70000, 5, 2], [2], [65535, 65536, 100000, 2]]
    assert (FIXTURES / "uint32" / "train.idx").read_bytes()[17] == 9  # the dtype code
    assert best_dtype(65_499) is np.uint16 and best_dtype(70_000) is np.uint32
    # rnnkit's writer, on a dictionary of >= 65,500 entries: code 9 and the same bytes
    text = tmp_path / "big.txt"
    words = [f"w{i}" for i in range(65_500)]
    text.write_text(" ".join(words) + "\n" + "w70 w1 w65499\n\n")
    preprocess(PreprocessConfig(destdir=str(tmp_path / "big"), trainpref=str(text)))
    big = IndexedDataset(tmp_path / "big" / "train")
    assert big.dtype == np.uint32 and (tmp_path / "big" / "train.idx").read_bytes()[17] == 9
    d = Dictionary.load(tmp_path / "big" / "dict.txt")
    assert len(d) >= 65_500 and d.decode(big[1]) == ["w70", "w1", "w65499"]


def test_dict_txt_read_as_fairseq_overwrite_crlf_trailing_spaces():
    d = Dictionary.load(RAW / "dict.overwrite.txt")
    # the, cat, sat, dog, the (overwrite: a new index that 'the' now maps to), a
    assert d.symbols[4:] == ["the", "cat", "sat", "dog", "the", "a"]
    assert d.index("the") == 8 and d.index("cat") == 5 and d.index("a") == 9
    # fairseq binarized raw/lm.train with this dictionary: the same ids as ours
    fairseq_ids = IndexedDataset(FIXTURES / "lm_overwrite" / "train")
    lines = (RAW / "lm.train").read_text().split("\n")[:-1]
    assert [d.encode(line.split()) for line in lines] == [
        fairseq_ids[i].tolist() for i in range(len(fairseq_ids))
    ]
    # written back with the flag, so it reads back to the same indices
    again = Dictionary.from_lines(d.to_lines())
    assert again.symbols == d.symbols and again.index("the") == 8
    assert d.to_lines()[4] == "the 1 #fairseq:overwrite"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1\nb 2\na 3\n", r"dict.txt:3: duplicate token 'a' \(end the line with "),
        ("<unk> 4\n", r"dict.txt:1: duplicate token '<unk>'"),
        ("a 1\nb two\n", r"dict.txt:2: expected '<token> <count>'"),
    ],
)
def test_dict_txt_plain_duplicate_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "dict.txt"
    path.write_text(text)
    with pytest.raises(RnnkitError, match=message) as e:
        Dictionary.load(path)
    assert "\n" not in str(e.value)


def test_dict_txt_spaces_and_tabs_as_tokens_survive_trailing_whitespace():
    d = Dictionary.from_lines(["  5 ", "\t 3\r", "x 2 \t", "#fairseq:overwrite 1"])
    assert d.symbols[4:] == [" ", "\t", "x", "#fairseq:overwrite"]  # fairseq: a plain symbol
    assert d.count[4:] == [5, 3, 2, 1]


def copy_fixture(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


def test_translation_data_bin_task_and_languages_from_file_names(tmp_path):
    data = copy_fixture(tmp_path, "translation")
    assert not (data / "preprocess.json").exists()
    meta = read_data_meta(data)
    assert meta["task"] == "translation" and meta["options"]["source_lang"] == "de"
    task = load_task(data)
    assert (task.src_lang, task.tgt_lang) == ("de", "en")
    assert task.src_dict == Dictionary.load(data / "dict.de.txt")
    src, tgt = task.datasets("train")
    assert task.src_dict.decode(src[0]) == ["ein", "haus"]
    assert task.tgt_dict.decode(tgt[0]) == ["a", "house"]
    # the other direction of the same files: -s en (or -t de)
    for langs in (("en", None), (None, "de"), ("en", "de")):
        rev = load_task(data, langs=langs)
        assert (rev.src_lang, rev.tgt_lang) == ("en", "de")
        rsrc, rtgt = rev.datasets("valid")
        assert rev.src_dict.decode(rsrc[1]) == ["the", "small", "dog"]
        assert rev.tgt_dict.decode(rtgt[1]) == ["der", "<unk>", "hund"]


def test_several_pairs_need_s_and_t_and_bad_choices_are_one_line_errors(tmp_path):
    data = copy_fixture(tmp_path, "translation")
    for ext in ("bin", "idx"):
        shutil.copy(data / f"train.de-en.de.{ext}", data / f"train.de-fr.de.{ext}")
        shutil.copy(data / f"train.de-en.en.{ext}", data / f"train.de-fr.fr.{ext}")
    shutil.copy(data / "dict.en.txt", data / "dict.fr.txt")
    assert data_task_name(data) == "translation"
    with pytest.raises(RnnkitError, match=r"several language pairs \(de-en, de-fr\); pick one"):
        load_task(data)
    with pytest.raises(RnnkitError, match="several language pairs"):
        load_task(data, langs=("de", None))
    assert load_task(data, langs=("fr", None)).tgt_lang == "de"
    with pytest.raises(RnnkitError, match=r"no language pair matches -s fr -t es"):
        load_task(data, langs=("fr", "es"))
    (data / "dict.fr.txt").unlink()
    with pytest.raises(RnnkitError, match="without dict.fr.txt"):
        load_task(data, langs=("de", "fr"))


def test_lm_data_bin_and_s_t_on_non_translation_data(tmp_path):
    data = copy_fixture(tmp_path, "lm")
    assert data_task_name(data) == "lm"
    task = load_task(data, expect="lm")
    assert task.dictionary.decode(task.dataset("train")[0]) == "the cat sat on the mat".split()
    with pytest.raises(RnnkitError, match="-s/--source-lang and -t/--target-lang are for"):
        load_task(data, langs=("en", None))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RnnkitError, match="not a data directory .*fairseq data-bin"):
        load_task(empty)


def test_s_t_pick_the_direction_of_an_rnnkit_translation_directory(tmp_path):
    dest = tmp_path / "tr"
    preprocess(PreprocessConfig(task="translation", source_lang="de", target_lang="en",
                                destdir=str(dest), trainpref=str(RAW / "tr.train")))  # fmt: skip
    rev = load_task(dest, langs=("en", "de"))
    assert (rev.src_lang, rev.tgt_lang) == ("en", "de")
    assert rev.src_dict.decode(rev.datasets("train")[0][0]) == ["a", "house"]
    with pytest.raises(RnnkitError, match=r"no language pair matches -s fr \(pairs: de-en\)"):
        load_task(dest, langs=("fr", None))


@pytest.mark.skipif(
    not FAIRSEQ_PYTHON.is_file(),
    reason=f"fairseq is not installed at {FAIRSEQ_PYTHON} (make it as in "
    "tests/fixtures/fairseq_data/make.sh); the checked-in fixtures test the other direction",
)
def test_fairseq_reads_rnnkit_data_directories(tmp_path):
    dest = tmp_path / "tr"
    preprocess(PreprocessConfig(task="translation", source_lang="de", target_lang="en",
                                destdir=str(dest), trainpref=str(RAW / "tr.train")))  # fmt: skip
    big = tmp_path / "big.txt"
    big.write_text(" ".join(f"w{i}" for i in range(65_500)) + "\nw7 w65499\n")
    preprocess(PreprocessConfig(destdir=str(tmp_path / "big"), trainpref=str(big)))
    script = (
        "import sys\n"
        "from fairseq.data import Dictionary, data_utils\n"
        "for prefix, dict_path in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    d = Dictionary.load(dict_path)\n"
        "    ds = data_utils.load_indexed_dataset(prefix, d, 'mmap')\n"
        "    print(ds[len(ds) - 1].tolist(), d.string(ds[len(ds) - 1]))\n"
    )
    args = [str(dest / "train.de-en.de"), str(dest / "dict.de.txt"),
            str(tmp_path / "big" / "train"), str(tmp_path / "big" / "dict.txt")]  # fmt: skip
    out = subprocess.run([str(FAIRSEQ_PYTHON), "-c", script, *args], capture_output=True,
                         text=True, timeout=300, check=True).stdout.splitlines()  # fmt: skip
    ours = Dictionary.load(dest / "dict.de.txt")
    last = IndexedDataset(dest / "train.de-en.de")[3].tolist()
    assert out[0] == f"{last} der hund" and ours.decode(last) == ["der", "hund"]
    d = Dictionary.load(tmp_path / "big" / "dict.txt")
    assert out[1] == f"{[d.index('w7'), d.index('w65499'), 2]} w7 w65499"
