"""Typed, frozen configuration and the one place where its layers are merged.

A component's options are a frozen dataclass whose fields carry their help text in
``field(metadata={"help": ...})``. :func:`resolve` builds one from layers in increasing precedence
(dataclass defaults < preset < config file < command-line flags), converts strings to the field's
type, and rejects unknown keys with the closest valid names.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from rnnkit.errors import RnnkitError
from rnnkit.registry import suggest

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
BOOL_WORDS = frozenset(_TRUE | _FALSE)  # what a boolean option's value may be (any case)


def opt(default: Any, help: str, *, resumable: bool = False) -> Any:  # noqa: A002 - argparse's
    """A dataclass field with a default and a help text.

    ``resumable``: the field may change when a run resumes from a checkpoint, because it leaves
    the weights' shapes and meaning alone (dropouts, a loss weight); any other model field that
    changes is refused on resume (:mod:`rnnkit.training.resume`).
    """
    return dataclasses.field(default=default, metadata={"help": help, "resumable": resumable})


def kebab(name: str) -> str:
    """``hidden_size`` → ``hidden-size`` (the command-line spelling of a field)."""
    return name.replace("_", "-")


def type_name(tp: Any) -> str:
    """A short readable name for a field type (``int``, ``float | None``, ``lstm|gru``)."""
    if get_origin(tp) is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (often a string from the command line) to type ``tp``, or raise."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return convert(value, a, key)
            except RnnkitError as e:
                errors.append(str(e))
        raise RnnkitError(errors[0] if errors else f"{key}: cannot be None")
    if origin is Literal:
        choices = get_args(tp)
        for c in choices:
            if value == c or str(value) == str(c):
                return c
        raise RnnkitError(
            f"{key}: {value!r} is not one of {', '.join(map(str, choices))}"
            f"{suggest(str(value), [str(c) for c in choices])}"
        )
    if origin in (tuple, list):
        (inner, *_) = get_args(tp) or (str,)
        items = value.split(",") if isinstance(value, str) else list(value)
        return origin(convert(v, inner, key) for v in items if v != "")
    if tp is bool:
        if isinstance(value, bool):
            return value
        s = str(value).lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise RnnkitError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float, str):
        if isinstance(value, bool) and tp is not str:
            raise RnnkitError(f"{key}: expected {tp.__name__}, got {value!r}")
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise RnnkitError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    return value


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    """The dataclass fields of ``cls`` by name, with string annotations resolved."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        out[f.name] = f
    return out


def resolve(cls: type[C], *layers: Mapping[str, Any] | None, source: str = "option") -> C:
    """Build ``cls`` from ``layers``, later layers overriding earlier ones.

    Keys may use ``snake_case`` or ``kebab-case``. An unknown key raises :class:`RnnkitError`
    naming the closest fields; a value of the wrong type raises one naming the field.
    """
    fields = fields_of(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for raw_key, value in (layer or {}).items():
            key = raw_key.replace("-", "_").lstrip("_")
            if key not in fields:
                names = [kebab(n) for n in fields]
                raise RnnkitError(
                    f"unknown {source} {kebab(key)!r} for {cls.__name__}"
                    f"{suggest(kebab(key), names)} (valid: {', '.join(names)})"
                )
            values[key] = convert(value, fields[key].type, f"--{kebab(key)}")
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain data (for checkpoints and JSON)."""
    return dataclasses.asdict(cfg)


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file (a flat mapping of field names to values)."""
    p = Path(path)
    if p.is_dir():
        raise RnnkitError(f"{p}: is a directory; --config takes a JSON file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnkitError(f"{p}: no such config file") from None
    except PermissionError:
        raise RnnkitError(f"{p}: permission denied") from None
    except UnicodeDecodeError as e:
        raise RnnkitError(f"{p}: not a JSON file (invalid UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise RnnkitError(f"{p}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise RnnkitError(f"{p}: expected a JSON object of option names to values")
    return data


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """Rows of ``(option, type, default, help)`` for every field of ``cls``."""
    rows = []
    for name, f in fields_of(cls).items():
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        rows.append(
            (f"--{kebab(name)}", type_name(f.type), repr(default), f.metadata.get("help", ""))
        )
    return rows


def parse_overrides(args: list[str]) -> dict[str, str]:
    """Turn ``["--hidden-size", "650", "--tie-weights"]`` into ``{"hidden-size": "650", ...}``.

    A flag followed by another flag (or nothing) means ``true``; ``--name=value`` also works.
    """
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or a == "--":
            raise RnnkitError(f"unexpected argument {a!r} (options look like --name value)")
        if "=" in a:
            k, v = a[2:].split("=", 1)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            k, v = a[2:], args[i + 1]
            i += 2
        else:
            k, v = a[2:], "true"
            i += 1
        out[k] = v
    return out
