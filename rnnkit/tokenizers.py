"""Tokenizers: raw text line ↔ token strings, registered by name.

``space`` splits pre-tokenized text on whitespace (the default); ``char`` makes every Unicode
character a token, with the end of a line as ``</s>``, so ``decode(encode(x)) == x`` exactly;
``sentencepiece`` trains a unigram or BPE model on the train split and keeps it in the data
directory (and inside checkpoints) so later commands encode raw input and decode output with it.
A tokenizer's :meth:`state` is plain data that rebuilds it with :func:`tokenizer_from_state`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rnnkit.dictionary import EOS
from rnnkit.errors import RnnkitError
from rnnkit.registry import Registry


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
    ) -> SentencePieceTokenizer:
        """Train a model on ``files`` and write ``destdir/spm.model``."""
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe"):
            raise RnnkitError(f"--spm-model-type must be unigram or bpe, got {model_type!r}")
        prefix = Path(destdir) / "spm"
        try:
            spm.SentencePieceTrainer.train(
                input=",".join(os.fspath(f) for f in files),
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
