"""Character-level word features: a word's spelling as a vector, for words the vocabulary lacks.

A tagger that reads only word ids sees every unseen city or airline name as the same ``<unk>``.
Reading each word's characters too (Lample et al. 2016: a char-BiLSTM; Ma & Hovy 2016: a
char-CNN with max-pooling) gives an unseen word a representation of its own, from its shape,
prefixes and suffixes. :class:`CharVocab` maps characters to ids (0 padding, 1 an unknown
character, 2/3 the begin/end-of-word markers) and is rebuilt from the word
:class:`~rnnkit.dictionary.Dictionary` alone, so a checkpoint needs nothing extra.
:class:`CharFeatures` turns words into (B, T, D) features to concatenate to the word
embeddings, either from word ids (through a table of each dictionary word's characters; fast for
training) or from per-token character ids computed from the raw strings
(:meth:`CharVocab.encode_sentences`), which is what inference should pass: there the raw token
of an ``<unk>`` is known, and its characters give it real features. Special symbols and padding
have no characters and get zero features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnkit.config import opt
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError

PAD_CHAR, UNK_CHAR, BOW, EOW = 0, 1, 2, 3
NUM_RESERVED = 4

CharKind = Literal["none", "cnn", "lstm"]


@dataclass(frozen=True)
class CharConfig:
    """Options of the character features (flat ``char_*`` names, so a model config can inherit
    them and each is a ``--char-*`` flag)."""

    char_features: CharKind = opt("none", "character features per word: none, cnn or lstm")
    char_embed_dim: int = opt(16, "character embedding size")
    char_dim: int = opt(32, "character feature size per word (cnn filters; lstm 2 × hidden)")
    char_kernel_size: int = opt(3, "cnn: characters per filter window (odd)")
    char_max_len: int = opt(20, "characters read per word (longer: first and last halves)")

    def __post_init__(self) -> None:
        for name in ("char_embed_dim", "char_dim", "char_kernel_size", "char_max_len"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        if self.char_kernel_size % 2 == 0:
            raise RnnkitError("--char-kernel-size must be odd")
        if self.char_features == "lstm" and self.char_dim % 2:
            raise RnnkitError("--char-dim must be even with --char-features lstm")


def _ordinary(d: Dictionary) -> list[str]:
    """The dictionary's words that have a spelling (not specials, not ``madeupword`` padding)."""
    return [s for s in d.symbols[d.nspecial :] if not s.startswith("madeupword")]


class CharVocab:
    """Characters ↔ ids: the sorted characters of a word dictionary after the reserved ids."""

    def __init__(self, chars: Sequence[str], max_len: int) -> None:
        self.chars = list(chars)
        self.max_len = max_len  # characters kept per word, markers not counted
        self.index = {c: i + NUM_RESERVED for i, c in enumerate(self.chars)}

    @classmethod
    def from_dictionary(cls, d: Dictionary, max_len: int) -> CharVocab:
        """Every character of ``d``'s ordinary words, sorted (deterministic from ``d``)."""
        return cls(sorted({c for w in _ordinary(d) for c in w}), max_len)

    def __len__(self) -> int:
        return NUM_RESERVED + len(self.chars)

    def encode(self, word: str) -> list[int]:
        """A word → ``[BOW, c_1, …, c_n, EOW]``; a long word keeps its first and last halves."""
        if len(word) > self.max_len:
            head = (self.max_len + 1) // 2
            word = word[:head] + word[len(word) - (self.max_len - head) :]
        return [BOW, *(self.index.get(c, UNK_CHAR) for c in word), EOW]

    def word_table(self, d: Dictionary) -> Tensor:
        """(V, W) int64: each dictionary word's character ids, ``PAD_CHAR``-padded; specials
        and ``madeupword`` padding are all padding (no characters)."""
        rows = [
            self.encode(s) if i >= d.nspecial and not s.startswith("madeupword") else []
            for i, s in enumerate(d.symbols)
        ]
        return _pad(rows, self.max_len + 2)

    def encode_sentences(self, sentences: Sequence[Sequence[str]]) -> Tensor:
        """Raw token strings of B sentences → (B, T, W) character ids (T the longest sentence;
        padding tokens have no characters). Pass this at inference, so unseen words are read."""
        steps = max([len(s) for s in sentences] + [1])
        width = max([len(w) for s in sentences for w in s] + [0])
        width = min(width, self.max_len) + 2
        out = torch.full((len(sentences), steps, width), PAD_CHAR, dtype=torch.long)
        for b, sent in enumerate(sentences):
            for t, word in enumerate(sent):
                ids = self.encode(word)
                out[b, t, : len(ids)] = torch.tensor(ids)
        return out


def _pad(rows: Sequence[Sequence[int]], width: int) -> Tensor:
    out = torch.full((len(rows), width), PAD_CHAR, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


class CharFeatures(nn.Module):
    """Words → (D,) features from their characters, by a char-CNN with max-pooling over the
    word (``cnn``) or the final states of a char-BiLSTM (``lstm``)."""

    def __init__(self, cfg: CharConfig, vocab: CharVocab, table: Tensor) -> None:
        super().__init__()
        if cfg.char_features == "none":
            raise RnnkitError("CharFeatures needs --char-features cnn or lstm")
        self.kind, self.vocab, self.output_size = cfg.char_features, vocab, cfg.char_dim
        self.embed = nn.Embedding(len(vocab), cfg.char_embed_dim, padding_idx=PAD_CHAR)
        if cfg.char_features == "cnn":
            k = cfg.char_kernel_size
            # padding k//2 with a zero padding embedding: a word's outputs do not depend on
            # how much padding follows it
            self.conv = nn.Conv1d(cfg.char_embed_dim, cfg.char_dim, k, padding=k // 2)
        else:
            self.rnn = nn.LSTM(cfg.char_embed_dim, cfg.char_dim // 2, batch_first=True,
                               bidirectional=True)  # fmt: skip
        self.register_buffer("table", table, persistent=False)  # (V, W), from the dictionary

    @classmethod
    def build(cls, cfg: CharConfig, dictionary: Dictionary) -> CharFeatures:
        """Character features for the words of ``dictionary``."""
        vocab = CharVocab.from_dictionary(dictionary, cfg.char_max_len)
        return cls(cfg, vocab, vocab.word_table(dictionary))

    def forward(self, tokens: Tensor, chars: Tensor | None = None) -> Tensor:
        """Features (B, T, D) of ``tokens`` (B, T): from ``chars`` (B, T, W) when given (the
        raw strings' characters, :meth:`CharVocab.encode_sentences`), else from each word id's
        characters in the dictionary (each distinct word is encoded once per batch)."""
        if chars is not None:
            flat = self.encode_words(chars.reshape(-1, chars.size(-1)))  # (B*T, D)
            return flat.reshape(*chars.shape[:2], -1)
        words, where = torch.unique(tokens, return_inverse=True)  # (U,), (B, T)
        chars = self.table[words]  # (U, W)
        width = int((chars != PAD_CHAR).sum(1).max())  # the batch's longest word, not W
        return self.encode_words(chars[:, : max(width, 1)])[where]  # (B, T, D)

    def encode_words(self, chars: Tensor) -> Tensor:
        """``chars`` (N, W) character ids, ``PAD_CHAR`` after each word → (N, D); a word
        without characters gets zeros."""
        lengths = (chars != PAD_CHAR).sum(1)  # (N,)
        x = self.embed(chars)  # (N, W, C)
        if self.kind == "cnn":
            h = self.conv(x.transpose(1, 2))  # (N, D, W)
            inside = torch.arange(chars.size(1), device=chars.device) < lengths[:, None]
            h = h.masked_fill(~inside[:, None, :], float("-inf")).max(2).values  # (N, D)
            return torch.tanh(h).masked_fill((lengths == 0)[:, None], 0.0)
        return self._bilstm(x, lengths)

    def _bilstm(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Final forward and backward states of the char-BiLSTM per word (N, D); zeros for
        words without characters. Run in fp32 (packed LSTMs have no bf16 kernel on CPU)."""
        out = x.new_zeros(x.size(0), self.output_size, dtype=torch.float32)
        keep = (lengths > 0).nonzero().squeeze(1)
        if keep.numel() == 0:
            return out
        with torch.autocast(x.device.type, enabled=False):
            packed = pack_padded_sequence(
                x[keep].float(), lengths[keep].cpu(), batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.rnn(packed)  # h: (2, N', H), in the input's order
        return out.index_copy(0, keep, torch.cat([h[0], h[1]], dim=1))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, chars={len(self.vocab)}"
