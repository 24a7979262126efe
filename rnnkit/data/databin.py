"""A fairseq ``data-bin`` read as an rnnkit data directory: the task and languages from file names.

``fairseq-preprocess`` writes the same ``.bin``/``.idx`` layout and ``dict.txt`` files as
``rnnkit preprocess`` but no ``preprocess.json``. As fairseq's tasks do, the file names say what
the directory holds: ``{split}.{a}-{b}.{lang}.idx`` for both ``lang`` of a pair is translation
data (trainable in either direction: ``-s``/``-t`` pick one, else the pair's order in the names),
``{split}.idx`` beside ``dict.txt`` is language-model data. :func:`fairseq_meta` builds the
metadata ``preprocess.json`` would hold (``tokenizer`` ``space``: fairseq's text is pre-split);
:func:`pick_direction` applies ``-s``/``-t`` to any translation directory's metadata.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError

Langs = tuple[str | None, str | None]  # (-s, -t); None where not given

_PAIR_FILE = re.compile(r"^[^.]+\.([^.-]+)-([^.-]+)\.([^.]+)\.idx$")
_LM_FILE = re.compile(r"^[^.]+\.idx$")


def language_pairs(data_dir: Path) -> list[tuple[str, str]]:
    """The ``(a, b)`` pairs of ``{split}.a-b.{a,b}.idx`` files (both sides present), sorted."""
    sides: dict[tuple[str, str], set[str]] = {}
    for p in data_dir.iterdir():
        m = _PAIR_FILE.match(p.name)
        if m and m.group(3) in m.group(1, 2):
            sides.setdefault((m.group(1), m.group(2)), set()).add(m.group(3))
    return sorted(pair for pair, langs in sides.items() if langs == set(pair))


def is_lm_dir(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds ``dict.txt`` and at least one ``{split}.bin/.idx``."""
    if not (data_dir / "dict.txt").is_file():
        return False
    return any(_LM_FILE.match(p.name) and p.with_suffix(".bin").is_file()
               for p in data_dir.iterdir())  # fmt: skip


def fairseq_task(data_dir: Path) -> str | None:
    """``translation`` or ``lm`` for a fairseq data-bin (however many pairs), else None."""
    if language_pairs(data_dir):
        return "translation"
    return "lm" if is_lm_dir(data_dir) else None


def fairseq_meta(data_dir: Path, langs: Langs = (None, None)) -> dict[str, Any] | None:
    """``preprocess.json``'s fields for a fairseq data-bin, or None if it is not one."""
    pairs = language_pairs(data_dir)
    if pairs:
        src, tgt = _choose_pair(data_dir, pairs, langs)
        for lang in (src, tgt):
            if not (data_dir / f"dict.{lang}.txt").is_file():
                raise RnnkitError(f"{data_dir}: fairseq data-bin without dict.{lang}.txt")
        options = {"task": "translation", "source_lang": src, "target_lang": tgt}
        return {"task": "translation", "tokenizer": "space", "options": options, "fairseq": True}
    if is_lm_dir(data_dir):
        if langs != (None, None):
            raise RnnkitError(f"{data_dir}: -s/--source-lang and -t/--target-lang are for "
                              "translation data; this is language-model data")  # fmt: skip
        options = {"task": "lm"}
        return {"task": "lm", "tokenizer": "space", "options": options, "fairseq": True}
    return None


def _choose_pair(data_dir: Path, pairs: list[tuple[str, str]], langs: Langs) -> tuple[str, str]:
    """The (source, target) direction: the pair -s/-t name (either order), else the only pair."""
    src, tgt = langs
    shown = ", ".join(f"{a}-{b}" for a, b in pairs)
    fits = [p for p in pairs if (src is None or src in p) and (tgt is None or tgt in p)]
    if src is not None and src == tgt:
        raise RnnkitError(f"-s/--source-lang and -t/--target-lang are both {src!r}")
    if not fits:
        given = " ".join(f"{flag} {v}" for flag, v in (("-s", src), ("-t", tgt)) if v)
        raise RnnkitError(f"{data_dir}: no language pair matches {given} (pairs: {shown})")
    if len(fits) > 1:
        raise RnnkitError(
            f"{data_dir}: several language pairs ({shown}); pick one with -s/--source-lang "
            "and -t/--target-lang"
        )
    a, b = fits[0]
    if src is not None:
        return src, b if src == a else a
    if tgt is not None:
        return (b if tgt == a else a), tgt
    return a, b


def pick_direction(meta: dict[str, Any], data_dir: Path, langs: Langs) -> dict[str, Any]:
    """``meta`` with the direction -s/-t name (the same pair, either order) as source/target."""
    if langs == (None, None):
        return meta
    opts = meta.get("options", {})
    pair = (opts.get("source_lang"), opts.get("target_lang"))
    if meta.get("task") != "translation" or None in pair:
        raise RnnkitError(f"{data_dir}: -s/--source-lang and -t/--target-lang are for "
                          f"translation data; this is {meta.get('task')!r} data")  # fmt: skip
    src, tgt = _choose_pair(data_dir, [pair], langs)  # type: ignore[list-item]
    return {**meta, "options": {**opts, "source_lang": src, "target_lang": tgt}}
