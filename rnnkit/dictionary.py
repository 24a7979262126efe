"""Token ↔ index mapping in fairseq's ``dict.txt`` format.

Indices 0–3 are the special symbols ``<s> <pad> </s> <unk>`` in fairseq's order, so an rnnkit data
directory and a fairseq ``data-bin`` share dictionaries. ``dict.txt`` holds one ``token count``
line per non-special symbol, most frequent first; the token is everything before the last space,
so a space or tab can itself be a token (the char tokenizer needs that).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit.errors import RnnkitError, at
from rnnkit.io import atomic_write

if TYPE_CHECKING:  # torch is not imported at run time: `rnnkit preprocess --help` stays fast
    import torch

BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
OVERWRITE = "#fairseq:overwrite"  # dict.txt flag: this line re-adds a symbol at a new index


class Dictionary:
    """A vocabulary with fairseq's special symbols at indices 0 (bos), 1 (pad), 2 (eos), 3 (unk)."""

    def __init__(self) -> None:
        self.symbols: list[str] = []
        self.count: list[int] = []
        self.indices: dict[str, int] = {}
        self.bos_index = self.add_symbol(BOS, 1)
        self.pad_index = self.add_symbol(PAD, 1)
        self.eos_index = self.add_symbol(EOS, 1)
        self.unk_index = self.add_symbol(UNK, 1)
        self.nspecial = len(self.symbols)

    def __len__(self) -> int:
        return len(self.symbols)

    def __getitem__(self, index: int) -> str:
        return self.symbols[index] if 0 <= index < len(self.symbols) else UNK

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.indices

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dictionary) and self.symbols == other.symbols

    def index(self, symbol: str) -> int:
        """Index of ``symbol``, or ``unk_index`` if it is not in the dictionary."""
        return self.indices.get(symbol, self.unk_index)

    def add_symbol(self, symbol: str, n: int = 1) -> int:
        """Add ``n`` occurrences of ``symbol``; return its index."""
        idx = self.indices.get(symbol)
        if idx is None:
            idx = len(self.symbols)
            self.indices[symbol] = idx
            self.symbols.append(symbol)
            self.count.append(n)
        else:
            self.count[idx] += n
        return idx

    def update(self, counts: Counter) -> None:
        """Add all ``counts`` (symbol → occurrences)."""
        for sym, n in counts.items():
            self.add_symbol(sym, n)

    def finalize(self, threshold: int = 1, nwords: int = -1, padding_factor: int = 8) -> None:
        """Sort by count (ties alphabetically), keep the ``nwords`` most frequent and those seen at
        least ``threshold`` times, and pad the size to a multiple of ``padding_factor``.

        ``nwords`` counts the special symbols, as in fairseq; -1 keeps every word.
        """
        specials = self.symbols[: self.nspecial]
        special_counts = self.count[: self.nspecial]
        words = sorted(
            zip(self.symbols[self.nspecial :], self.count[self.nspecial :], strict=True),
            key=lambda sc: (-sc[1], sc[0]),
        )
        limit = len(words) if nwords < 0 else max(nwords - self.nspecial, 0)
        kept = [(s, c) for s, c in words[:limit] if c >= threshold]
        self.symbols = specials + [s for s, _ in kept]
        self.count = special_counts + [c for _, c in kept]
        i = 0
        while padding_factor > 1 and len(self.symbols) % padding_factor:
            sym = f"madeupword{i:04d}"
            i += 1
            if sym not in self.symbols:
                self.symbols.append(sym)
                self.count.append(0)
        self.indices = {s: i for i, s in enumerate(self.symbols)}

    def encode(self, tokens: Iterable[str], append_eos: bool = True) -> list[int]:
        """Token strings → indices (unknown tokens → ``unk_index``), with ``</s>`` appended."""
        ids = [self.indices.get(t, self.unk_index) for t in tokens]
        if append_eos:
            ids.append(self.eos_index)
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor, strip_special: bool = True) -> list[str]:
        """Indices → token strings, dropping bos/pad/eos when ``strip_special``."""
        if not isinstance(ids, list | tuple):  # a tensor (or an array): its Python ints
            ids = ids.tolist()
        skip = {self.bos_index, self.pad_index, self.eos_index} if strip_special else set()
        return [self[i] for i in ids if i not in skip]

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``dict.txt`` (``token count`` per line, specials omitted) atomically."""
        with atomic_write(path) as f:
            for line in self.to_lines():
                f.write(line + "\n")

    def to_lines(self) -> list[str]:
        """The dictionary as ``dict.txt`` lines (for storing inside checkpoints as plain data).

        A symbol that a ``#fairseq:overwrite`` line added a second time keeps its flag, so the
        lines read back to the same indices.
        """
        seen = set(self.symbols[: self.nspecial])
        lines = []
        for sym, n in zip(self.symbols[self.nspecial :], self.count[self.nspecial :], strict=True):
            lines.append(f"{sym} {n} {OVERWRITE}" if sym in seen else f"{sym} {n}")
            seen.add(sym)
        return lines

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "<dictionary>") -> Dictionary:
        """Parse ``dict.txt`` lines as fairseq does; a bad line raises an error at ``source:line``.

        Trailing whitespace (a ``\\r``, spaces) is dropped; a line may end in the flag
        ``#fairseq:overwrite``, which adds the symbol again at a new index that the symbol then
        maps to (fairseq's rule); any other repeated symbol is an error. Blank lines are skipped.
        """
        d = cls()
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip()
            if line == "":
                continue
            sym, sep, n = line.rpartition(" ")
            overwrite = sep != "" and n == OVERWRITE
            if overwrite:
                sym, sep, n = sym.rpartition(" ")
            if not sep or not n.lstrip("-").isdigit():
                raise RnnkitError(
                    f"{at(source, lineno)}: expected '<token> <count>' (then optionally "
                    f"{OVERWRITE}), got {raw!r}"
                )
            if sym in d.indices and not overwrite:
                raise RnnkitError(
                    f"{at(source, lineno)}: duplicate token {sym!r} (end the line with "
                    f"{OVERWRITE} to give it a new index, as fairseq does)"
                )
            d.indices[sym] = len(d.symbols)
            d.symbols.append(sym)
            d.count.append(int(n))
        return d

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dictionary:
        """Read a ``dict.txt`` file (split on ``\\n`` only, so odd whitespace tokens survive)."""
        p = Path(path)
        if not p.is_file():
            raise RnnkitError(f"{p}: no such dictionary file")
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise RnnkitError(f"{p}: invalid UTF-8 at byte {e.start}") from None
        return cls.from_lines(text.split("\n"), source=str(p))
