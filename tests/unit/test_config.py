"""Typed config: layered resolve, string conversion, unknown keys with suggestions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from rnnkit.config import (
    convert,
    describe,
    kebab,
    load_file,
    opt,
    parse_overrides,
    resolve,
    to_dict,
)
from rnnkit.errors import RnnkitError


@dataclass(frozen=True)
class Cfg:
    hidden_size: int = opt(8, "width")
    cell: Literal["lstm", "gru"] = opt("lstm", "cell type")
    dropout: float = opt(0.0, "dropout")
    tie: bool = opt(False, "tie weights")
    layers: tuple[int, ...] = opt((), "sizes")
    name: str | None = opt(None, "a name")


def test_later_layers_win_and_strings_are_converted():
    cfg = resolve(Cfg, {"hidden_size": 4}, {"hidden-size": "16", "tie": "yes"}, {"cell": "gru"})
    assert cfg == Cfg(hidden_size=16, cell="gru", tie=True)
    assert resolve(Cfg, None, {}) == Cfg()


def test_unknown_key_suggests_the_closest_field():
    with pytest.raises(RnnkitError, match=r"unknown option 'hiden-size'.*mean 'hidden-size'"):
        resolve(Cfg, {"hiden_size": 3})


@pytest.mark.parametrize(
    ("value", "tp", "expected"),
    [
        ("3", int, 3),
        ("0.5", float, 0.5),
        ("off", bool, False),
        ("1,2,3", tuple[int, ...], (1, 2, 3)),
        ("none", int | None, None),
        ("7", int | None, 7),
        ("gru", Literal["lstm", "gru"], "gru"),
    ],
)
def test_convert(value, tp, expected):
    assert convert(value, tp, "--x") == expected


@pytest.mark.parametrize(
    ("value", "tp", "message"),
    [
        ("x", int, "--x: expected int, got 'x'"),
        (1.5, int, "expected int"),
        ("maybe", bool, "expected true or false"),
        ("lsmt", Literal["lstm", "gru"], "not one of lstm, gru; did you mean 'lstm'"),
        (True, float, "expected float"),
    ],
)
def test_convert_errors_name_the_option(value, tp, message):
    with pytest.raises(RnnkitError, match=message):
        convert(value, tp, "--x")


def test_parse_overrides():
    args = ["--hidden-size", "650", "--tie", "--cell=gru"]
    assert parse_overrides(args) == {"hidden-size": "650", "tie": "true", "cell": "gru"}
    with pytest.raises(RnnkitError, match="unexpected argument 'oops'"):
        parse_overrides(["oops"])


def test_load_file_errors(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{\n"a": }', encoding="utf-8")
    with pytest.raises(RnnkitError, match=r"c.json:2: invalid JSON"):
        load_file(bad)
    bad.write_text("[1]", encoding="utf-8")
    with pytest.raises(RnnkitError, match="expected a JSON object"):
        load_file(bad)
    with pytest.raises(RnnkitError, match="no such config file"):
        load_file(tmp_path / "missing.json")


def test_describe_and_to_dict():
    rows = {r[0]: r for r in describe(Cfg)}
    assert rows["--cell"][1:] == ("lstm|gru", "'lstm'", "cell type")
    assert rows["--name"][1] == "str | None"
    assert kebab("hidden_size") == "hidden-size"
    assert to_dict(Cfg())["hidden_size"] == 8
