"""Tokenizers: raw text line ↔ token strings, registered by name.

``space`` splits pre-tokenized text on whitespace (the default); ``char`` makes every Unicode
character a token, with the end of a line as ``</s>``, so ``decode(encode(x)) == x`` exactly;
``sentencepiece`` trains a unigram or BPE model on the train split and keeps it in the data
directory (and inside checkpoints) so later commands encode raw input and decode output with it.
On a corpus longer than ``sample_lines``, sentencepiece trains on a seeded uniform sample of lines
streamed to its trainer (:func:`select_lines`), so its memory follows the sample, not the corpus.
A tokenizer's :meth:`state` is plain data that rebuilds it with :func:`tokenizer_from_state`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from rnnkit.dictionary import EOS
from rnnkit.errors import RnnkitError
from rnnkit.io import count_lines
from rnnkit.registry import Registry

T = TypeVar("T")


class Tokenizer:
    """Base class. ``encode`` maps a line of text to token strings; ``decode`` inverts it."""

    name = "base"

    def encode(self, text: str) -> list[str]:
        raise NotImplementedError

    def decode(self, tokens: list[str]) -> str:
        raise NotImplementedError

    def stream_piece(self, token: str, first_in_line: bool) -> str:
        """Text to print for ``token`` when output streams one token at a time."""
        if token == EOS:
            return "\n"
        return token if first_in_line else " " + token

    def state(self) -> dict[str, Any]:
        """Plain data from which :func:`tokenizer_from_state` rebuilds this tokenizer."""
        return {"name": self.name}


TOKENIZER_REGISTRY: Registry[type[Tokenizer]] = Registry("tokenizer")


@TOKENIZER_REGISTRY.register("space")
class SpaceTokenizer(Tokenizer):
    """Pre-tokenized text: tokens are separated by whitespace."""

    name = "space"

    def encode(self, text: str) -> list[str]:
        return text.split()

    def decode(self, tokens: list[str]) -> str:
        return " ".join(t for t in tokens if t != EOS)


@TOKENIZER_REGISTRY.register("char")
class CharTokenizer(Tokenizer):
    """Every Unicode character is a token; a line break is ``</s>`` (exactly invertible)."""

    name = "char"

    def encode(self, text: str) -> list[str]:
        out: list[str] = []
        for i, line in enumerate(text.split("\n")):
            if i:
                out.append(EOS)
            out.extend(line)
        return out

    def decode(self, tokens: list[str]) -> str:
        return "".join("\n" if t == EOS else t for t in tokens)

    def stream_piece(self, token: str, first_in_line: bool) -> str:
        return "\n" if token == EOS else token


@TOKENIZER_REGISTRY.register("sentencepiece")
class SentencePieceTokenizer(Tokenizer):
    """Subword units from a SentencePiece model (unigram or BPE) trained on the train split."""

    name = "sentencepiece"
    MODEL_FILE = "spm.model"

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(
        cls,
        files: list[str | os.PathLike],
        destdir: str | os.PathLike,
        vocab_size: int,
        model_type: str = "unigram",
        sample_lines: int = 0,
        seed: int = 0,
        nlines: int | None = None,
    ) -> SentencePieceTokenizer:
        """Train a model on ``files`` and write ``destdir/spm.model``.

        With ``sample_lines`` > 0 and more lines than that in ``files``, the trainer sees only
        ``sample_lines`` lines drawn uniformly (the same ones for the same ``seed``), streamed to
        it one at a time; otherwise it reads the files itself, as before the option existed.
        ``nlines``, the lines of ``files`` in all, saves counting them again if known.
        """
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe"):
            raise RnnkitError(f"--spm-model-type must be unigram or bpe, got {model_type!r}")
        paths = [os.fspath(f) for f in files]
        # Not sentencepiece's own input_sentence_size: its reservoir draws a different sample on
        # every run (sentencepiece 0.2, even after set_random_generator_seed), and it refuses
        # sizes of 100 or less. Leaving it unset also keeps spm.model byte-identical when no
        # sample is drawn.
        source: dict[str, Any] = {"input": ",".join(paths)}
        if sample_lines > 0:
            total = sum(count_lines(p) for p in paths) if nlines is None else nlines
            if total > sample_lines:
                sample = select_lines(raw_lines(paths), sample_lines, total, seed)
                source = {"sentence_iterator": map(strip_eol, sample)}
        prefix = Path(destdir) / "spm"
        try:
            spm.SentencePieceTrainer.train(
                **source,
                model_prefix=str(prefix),
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                # rnnkit's Dictionary owns the special symbols; spm's own would collide.
                bos_id=-1,
                eos_id=-1,
                unk_piece="<unk>",
                hard_vocab_limit=False,
                minloglevel=2,
            )
        except RuntimeError as e:
            raise RnnkitError(f"sentencepiece training failed: {e}") from None
        Path(str(prefix) + ".vocab").unlink(missing_ok=True)
        return cls(Path(str(prefix) + ".model").read_bytes())

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SentencePieceTokenizer:
        p = Path(path)
        if not p.is_file():
            raise RnnkitError(f"{p}: sentencepiece model not found")
        return cls(p.read_bytes())

    def encode(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def decode(self, tokens: list[str]) -> str:
        return self.sp.decode([t for t in tokens if t != EOS])

    def stream_piece(self, token: str, first_in_line: bool) -> str:
        if token == EOS:
            return "\n"
        text = token.replace("\u2581", " ")
        return text.lstrip(" ") if first_in_line else text

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_proto}


def select_lines(lines: Iterable[T], k: int, total: int, seed: int = 0) -> Iterator[T]:
    """``k`` of the ``total`` items of ``lines``, in order, each k-subset equally likely.

    Selection sampling (Knuth's Algorithm S): the next item is kept with probability (k still
    needed) / (items left), so exactly ``k`` come out of one pass that pulls one item at a time
    and holds none; the same ``seed`` keeps the same items.
    """
    rng = random.Random(seed)
    needed, left = k, total
    for line in lines:
        if needed <= 0:
            return
        if rng.random() * left < needed:
            needed -= 1
            yield line
        left -= 1


def raw_lines(paths: Iterable[str | os.PathLike]) -> Iterator[bytes]:
    """Every line of ``paths`` in turn as bytes, streamed, with its ``\\n`` (or ``\\r\\n``)."""
    for path in paths:
        with open(path, "rb") as f:
            yield from f


def strip_eol(line: bytes) -> bytes:
    """``line`` without its ``\\n`` and a ``\\r`` before it, as :func:`rnnkit.io.read_lines`."""
    line = line[:-1] if line.endswith(b"\n") else line
    return line[:-1] if line.endswith(b"\r") else line


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.state` (e.g. from a checkpoint)."""
    cls = TOKENIZER_REGISTRY.get(state["name"])
    if cls is SentencePieceTokenizer:
        return SentencePieceTokenizer(state["model"])
    return cls()


def load_tokenizer(name: str, data_dir: str | os.PathLike | None = None) -> Tokenizer:
    """The tokenizer ``name``; sentencepiece reads its model from ``data_dir/spm.model``."""
    cls = TOKENIZER_REGISTRY.get(name)
    if cls is SentencePieceTokenizer:
        if data_dir is None:
            raise RnnkitError("the sentencepiece tokenizer needs its data directory")
        return SentencePieceTokenizer.from_file(Path(data_dir) / SentencePieceTokenizer.MODEL_FILE)
    return cls()
