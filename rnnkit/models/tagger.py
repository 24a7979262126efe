"""Sequence labelling and sentence classification: ``rnn_tagger``, ``rnn_classifier``, presets.

Both read a sentence with one :class:`SentenceEncoder`: embedding → dropout → a uni- or
bidirectional recurrent stack run on a *packed* batch, so the backward direction of a short
sentence starts at its own last token, never at the padding after it, and a sentence's outputs
are the same alone or in a padded batch. ``rnn_tagger`` scores one tag per token (a bidirectional
LSTM tagger, Graves 2012; Huang et al. 2015 without the CRF) and, with ``--label-head``, a
sentence label from pooled encoder states, trained jointly (Liu & Lane 2016's joint slot filling
and intent detection). ``rnn_classifier`` is the label head alone, with last/mean/max/attention
pooling (Lin et al. 2017 for the attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.config import opt
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import register_architecture, register_model
from rnnkit.modules.cells import CELL
from rnnkit.modules.recurrent import run_fused

Pooling = Literal["last", "mean", "max", "attention"]


@dataclass(frozen=True)
class EncoderConfig:
    """Options of the sentence encoder shared by ``rnn_tagger`` and ``rnn_classifier``."""

    cell: str = opt("lstm", "recurrent cell with a fused kernel: lstm, gru, rnn_tanh, rnn_relu")
    embed_dim: int = opt(100, "word embedding size")
    hidden_size: int = opt(100, "hidden units per direction and layer")
    num_layers: int = opt(1, "number of recurrent layers")
    bidirectional: bool = opt(True, "read the sentence in both directions")
    dropout: float = opt(
        0.2, "dropout on the embeddings, between layers and on the outputs", resumable=True
    )

    def __post_init__(self) -> None:
        if CELL.get(self.cell).fused_mode is None:  # also: an unknown cell lists the valid ones
            raise RnnkitError(f"--cell {self.cell}: packed sequences need a fused cell")
        for name in ("embed_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise RnnkitError("--dropout must be in [0, 1)")


@dataclass(frozen=True)
class TaggerConfig(EncoderConfig):
    """Options of ``rnn_tagger`` (each is also ``--kebab-case`` on the command line)."""

    label_head: bool = opt(False, "also predict a sentence label (intent), trained jointly")
    pooling: Pooling = opt("mean", "label head: pool encoder states by last, mean, max, attention")
    label_weight: float = opt(
        1.0, "label head: weight of the label loss against the tag loss", resumable=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label_weight < 0:
            raise RnnkitError("--label-weight must be >= 0")


@dataclass(frozen=True)
class ClassifierConfig(EncoderConfig):
    """Options of ``rnn_classifier`` (each is also ``--kebab-case`` on the command line)."""

    pooling: Pooling = opt("max", "pool encoder states by last, mean, max or attention")


class SentenceEncoder(nn.Module):
    """Embedding, dropout and a fused recurrent stack over packed, padded sentences."""

    def __init__(self, cfg: EncoderConfig, vocab_size: int, padding_idx: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=padding_idx)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = CELL.get(cfg.cell).fused(
            cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.bidirectional, cfg.dropout
        )
        self.dirs = 2 if cfg.bidirectional else 1
        self.output_size = cfg.hidden_size * self.dirs

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens`` (B, T) and ``lengths`` (B,) → outputs (B, T, D), zero past each length,
        and each sentence's final state (B, D): the last layer's last step in every direction.

        An empty sentence (length 0) is read as one padding token, so it still gets a label.
        """
        x = self.drop(self.embed(tokens))  # (B, T, E)
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, hx = run_fused(self.rnn, packed)  # fp32 where bf16 autocast cannot run it
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.size(1))
        h = hx[0] if isinstance(hx, tuple) else hx  # (L*dirs, B, H), in the batch's order
        final = h[-self.dirs :].transpose(0, 1).reshape(tokens.size(0), -1)  # (B, dirs*H)
        return self.drop(out), final


class SentencePooling(nn.Module):
    """Encoder outputs (B, T, D) → one vector (B, D) per sentence, ignoring padding."""

    def __init__(self, mode: Pooling, dim: int) -> None:
        super().__init__()
        self.mode = mode
        # Additive self-attention: a_t ∝ exp(v·tanh(W h_t)) over the sentence's own steps.
        self.score = (
            nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
            if mode == "attention"
            else None
        )

    def forward(self, out: Tensor, final: Tensor, lengths: Tensor) -> Tensor:
        """``out`` (B, T, D), ``final`` (B, D), ``lengths`` (B,) → (B, D)."""
        if self.mode == "last":
            return final
        steps = torch.arange(out.size(1), device=out.device)
        mask = (steps[None, :] < lengths.clamp(min=1)[:, None]).unsqueeze(-1)  # (B, T, 1)
        if self.mode == "mean":
            return (out * mask).sum(1) / mask.sum(1)
        if self.mode == "max":
            return out.masked_fill(~mask, float("-inf")).max(1).values
        assert self.score is not None
        weights = self.score(out).masked_fill(~mask, float("-inf")).softmax(1)  # (B, T, 1)
        return (weights * out).sum(1)


@register_model("rnn_tagger", task="tagging")
class RNNTagger(nn.Module):
    """Recurrent sequence tagger (one tag per token), optionally with a sentence-label head."""

    config_class = TaggerConfig

    def __init__(self, cfg: TaggerConfig, vocab_size: int, padding_idx: int, ntags: int,
                 nlabels: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.cfg = cfg
        self.encoder = SentenceEncoder(cfg, vocab_size, padding_idx)
        self.tag_out = nn.Linear(self.encoder.output_size, ntags)
        self.pool = SentencePooling(cfg.pooling, self.encoder.output_size) if nlabels else None
        self.label_out = nn.Linear(self.encoder.output_size, nlabels) if nlabels else None

    @classmethod
    def build(
        cls,
        cfg: TaggerConfig,
        dictionary: Dictionary,
        tags: Dictionary,
        labels: Dictionary | None = None,
    ) -> RNNTagger:
        """A tagger for these token, tag and (with ``--label-head``) label dictionaries."""
        if cfg.label_head and labels is None:
            raise RnnkitError(
                "--label-head needs labels: preprocess a folder that has a `label` file"
            )
        nlabels = len(labels) if cfg.label_head and labels is not None else 0
        return cls(cfg, len(dictionary), dictionary.pad_index, len(tags), nlabels)

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """``tokens`` (B, T), ``lengths`` (B,) → tag logits (B, T, K) and label logits (B, C),
        or ``None`` without a label head."""
        out, final = self.encoder(tokens, lengths)  # (B, T, D), (B, D)
        tag_logits = self.tag_out(out)
        if self.pool is None or self.label_out is None:
            return tag_logits, None
        return tag_logits, self.label_out(self.pool(out, final, lengths))


@register_model("rnn_classifier", task="classification")
class RNNClassifier(nn.Module):
    """Recurrent sentence classifier: encoder, pooling over time, one label per sentence."""

    config_class = ClassifierConfig

    def __init__(self, cfg: ClassifierConfig, vocab_size: int, padding_idx: int, nlabels: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = SentenceEncoder(cfg, vocab_size, padding_idx)
        self.pool = SentencePooling(cfg.pooling, self.encoder.output_size)
        self.label_out = nn.Linear(self.encoder.output_size, nlabels)

    @classmethod
    def build(cls, cfg: ClassifierConfig, dictionary: Dictionary, labels: Dictionary):
        """A classifier for these token and label dictionaries."""
        return cls(cfg, len(dictionary), dictionary.pad_index, len(labels))

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``tokens`` (B, T), ``lengths`` (B,) → label logits (B, C)."""
        out, final = self.encoder(tokens, lengths)
        return self.label_out(self.pool(out, final, lengths))


@register_architecture("atis_bilstm", model="rnn_tagger")
def atis_bilstm() -> dict:
    """Joint ATIS slot tagger and intent classifier: BiLSTM 2×200, mean-pooled intent head.

    Chosen on ATIS valid over 2×100 units (dropout 0.2): about 0.4 F1 better on the mean of the
    last ten of 40 epochs, on each of three seeds (examples/atis/README.md).
    """
    return dict(cell="lstm", embed_dim=200, hidden_size=200, num_layers=1, bidirectional=True,
                dropout=0.3, label_head=True, pooling="mean")  # fmt: skip


@register_architecture("intent_bilstm", model="rnn_classifier")
def intent_bilstm() -> dict:
    """Intent classifier: BiLSTM with max pooling over time."""
    return dict(cell="lstm", embed_dim=100, hidden_size=100, num_layers=1, bidirectional=True,
                dropout=0.2, pooling="max")  # fmt: skip
