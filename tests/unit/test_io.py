"""Line reading: files and stdin split the same way, and errors name the line."""

import io
import sys

import pytest

from rnnkit.errors import RnnkitError
from rnnkit.io import read_lines, read_text_lines, split_lines


def test_bytes_split_like_a_file(tmp_path):
    data = b"a b\r\n\nc\xc3\xa9\nlast"
    (tmp_path / "f.txt").write_bytes(data)
    from_file = [t for _, t in read_lines(tmp_path / "f.txt")]
    assert split_lines(data) == from_file == ["a b", "", "c\u00e9", "last"]


def test_invalid_utf8_names_the_line():
    with pytest.raises(RnnkitError, match=r"<stdin>:2: invalid UTF-8"):
        split_lines(b"ok\n\xff\n")
    assert split_lines(b"ok\n\xff\n", errors="replace") == ["ok", "\ufffd"]


def test_dash_reads_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\ny\n")))
    assert read_text_lines("-") == ["x", "y"]
