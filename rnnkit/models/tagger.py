"""Sequence labelling and sentence classification: ``rnn_tagger``, ``rnn_classifier``, presets.

Both read a sentence with one :class:`SentenceEncoder`: embedding → dropout → a uni- or
bidirectional :class:`~rnnkit.modules.recurrent.RecurrentStack` of any registered cell run on a
*packed* batch, so the backward direction of a short sentence starts at its own last token,
never at the padding after it, and a sentence's outputs are the same alone or in a padded batch.
``rnn_tagger`` scores one tag per token (a bidirectional
LSTM tagger, Graves 2012; with ``--crf true`` a linear-chain CRF over the tag scores, Huang et al.
2015) and, with ``--label-head``, a sentence label from pooled encoder states, trained jointly
(Liu & Lane 2016's joint slot filling and intent detection). Rare and unseen words: character
features of each word concatenated to its embedding (``--char-features cnn|lstm``, Lample et al.
2016) and word dropout to ``<unk>`` in training (``--word-dropout-alpha``, Kiperwasser & Goldberg
2016, or a fixed ``--word-dropout`` rate). ``rnn_classifier`` is the label head alone, with
last/mean/max/attention pooling (Lin et al. 2017 for the attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.config import opt
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import register_architecture, register_model
from rnnkit.modules.cells import make_cell
from rnnkit.modules.charfeatures import CharConfig, CharFeatures
from rnnkit.modules.crf import CRF
from rnnkit.modules.recurrent import RecurrentStack, move_layer_keys
from rnnkit.modules.word_dropout import WordDropout

Pooling = Literal["last", "mean", "max", "attention"]


@dataclass(frozen=True)
class EncoderConfig:
    """Options of the sentence encoder shared by ``rnn_tagger`` and ``rnn_classifier``."""

    cell: str = opt("lstm", "recurrent cell: any registered cell (rnnkit models lists them)")
    embed_dim: int = opt(100, "word embedding size")
    hidden_size: int = opt(100, "hidden units per direction and layer")
    num_layers: int = opt(1, "number of recurrent layers")
    bidirectional: bool = opt(True, "read the sentence in both directions")
    dropout: float = opt(
        0.2, "dropout on the embeddings, between layers and on the outputs", resumable=True
    )

    def __post_init__(self) -> None:
        make_cell(self.cell)  # an unknown cell raises with the valid names and a suggestion
        for name in ("embed_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise RnnkitError("--dropout must be in [0, 1)")


@dataclass(frozen=True)
class TaggerConfig(CharConfig, EncoderConfig):
    """Options of ``rnn_tagger`` (each is also ``--kebab-case`` on the command line)."""

    label_head: bool = opt(False, "also predict a sentence label (intent), trained jointly")
    pooling: Pooling = opt("mean", "label head: pool encoder states by last, mean, max, attention")
    label_weight: float = opt(
        1.0, "label head: weight of the label loss against the tag loss", resumable=True
    )
    crf: bool = opt(
        False,
        "linear-chain CRF over the tags: NLL loss, Viterbi decoding under BIO rules "
        "(--label-smoothing then applies to the label head only)",
    )
    crf_bio_train: bool = opt(False, "crf: apply the BIO rules in training too, not only decoding")
    word_dropout_alpha: float = opt(
        0.0, "replace a training word w by <unk> with prob. alpha/(alpha+count(w)); 0: off",
        resumable=True,
    )  # fmt: skip
    word_dropout: float = opt(
        0.0, "replace training words by <unk> at this fixed rate (if alpha is 0)", resumable=True
    )

    def __post_init__(self) -> None:
        EncoderConfig.__post_init__(self)  # neither base chains on to the other
        CharConfig.__post_init__(self)
        if self.label_weight < 0:
            raise RnnkitError("--label-weight must be >= 0")
        if self.crf_bio_train and not self.crf:
            raise RnnkitError("--crf-bio-train needs --crf true")
        if self.word_dropout_alpha < 0:
            raise RnnkitError("--word-dropout-alpha must be >= 0")
        if not 0.0 <= self.word_dropout < 1.0:
            raise RnnkitError("--word-dropout must be in [0, 1)")


@dataclass(frozen=True)
class ClassifierConfig(EncoderConfig):
    """Options of ``rnn_classifier`` (each is also ``--kebab-case`` on the command line)."""

    pooling: Pooling = opt("max", "pool encoder states by last, mean, max or attention")


class SentenceEncoder(nn.Module):
    """Embedding, dropout and a recurrent stack of any cell over packed, padded sentences."""

    def __init__(
        self, cfg: EncoderConfig, vocab_size: int, padding_idx: int, extra_dim: int = 0
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=padding_idx)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = RecurrentStack(
            cfg.cell, cfg.embed_dim + extra_dim, cfg.hidden_size, cfg.num_layers,
            bidirectional=cfg.bidirectional, dropout=cfg.dropout,
        )  # fmt: skip
        self.dirs = 2 if cfg.bidirectional else 1
        self.output_size = cfg.hidden_size * self.dirs

    @staticmethod
    def upgrade_state_dict_named(state_dict: dict[str, Any], prefix: str) -> None:
        """Checkpoints before issue 12 held the torch module itself as ``rnn``: rename its
        weights to the stack's (checkpoint loading)."""
        move_layer_keys(state_dict, f"{prefix}rnn.", f"{prefix}rnn.rnn.")

    def forward(
        self, tokens: Tensor, lengths: Tensor, extra: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``tokens`` (B, T) and ``lengths`` (B,) → outputs (B, T, D), zero past each length,
        and each sentence's final state (B, D): the last layer's last step in every direction.
        ``extra`` (B, T, F) features (characters) are concatenated to the word embeddings.

        An empty sentence (length 0) is read as one padding token, so it still gets a label.
        """
        x = self.embed(tokens)  # (B, T, E)
        if extra is not None:
            x = torch.cat([x, extra.to(x.dtype)], dim=-1)  # (B, T, E + F)
        x = self.drop(x)
        out, state = self.rnn(x, None, lengths.clamp(min=1))
        h = state.h  # (L*dirs, B, H), in the batch's order
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
    """Recurrent sequence tagger (one tag per token), optionally with a sentence-label head, a
    CRF over the tags, character features and word dropout (each ``None`` when off)."""

    config_class = TaggerConfig

    def __init__(self, cfg: TaggerConfig, vocab_size: int, padding_idx: int, ntags: int,
                 nlabels: int = 0, *, crf: CRF | None = None, chars: CharFeatures | None = None,
                 word_drop: WordDropout | None = None) -> None:  # fmt: skip
        super().__init__()
        self.cfg = cfg
        extra = chars.output_size if chars is not None else 0
        self.encoder = SentenceEncoder(cfg, vocab_size, padding_idx, extra)
        self.tag_out = nn.Linear(self.encoder.output_size, ntags)
        self.pool = SentencePooling(cfg.pooling, self.encoder.output_size) if nlabels else None
        self.label_out = nn.Linear(self.encoder.output_size, nlabels) if nlabels else None
        # Registered after the encoder and heads, so that with every option off the model
        # draws its initial weights exactly as before these options existed.
        self.crf, self.char_features, self.word_drop = crf, chars, word_drop

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
        crf = (
            CRF.from_dictionary(tags, bio=True, constrain_training=cfg.crf_bio_train)
            if cfg.crf
            else None
        )
        chars = CharFeatures.build(cfg, dictionary) if cfg.char_features != "none" else None
        word_drop = None
        if cfg.word_dropout_alpha > 0 or cfg.word_dropout > 0:
            word_drop = WordDropout.from_dictionary(
                dictionary, alpha=cfg.word_dropout_alpha, rate=cfg.word_dropout
            )
        return cls(cfg, len(dictionary), dictionary.pad_index, len(tags), nlabels,
                   crf=crf, chars=chars, word_drop=word_drop)  # fmt: skip

    def forward(
        self, tokens: Tensor, lengths: Tensor, chars: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``tokens`` (B, T), ``lengths`` (B,) → tag scores (B, T, K) (logits, or the CRF's
        emissions) and label logits (B, C), or ``None`` without a label head. ``chars``
        (B, T', W): the raw tokens' characters (inference on raw text), else with character
        features each word id's spelling is used."""
        extra = None
        if self.char_features is not None:
            # characters of the original words, so a word dropped to <unk> is still read
            extra = self.char_features(tokens, _fit_steps(chars, tokens.size(1)))
        words = self.word_drop(tokens) if self.word_drop is not None else tokens
        out, final = self.encoder(words, lengths, extra)  # (B, T, D), (B, D)
        tag_logits = self.tag_out(out)
        if self.pool is None or self.label_out is None:
            return tag_logits, None
        return tag_logits, self.label_out(self.pool(out, final, lengths))


def _fit_steps(chars: Tensor | None, steps: int) -> Tensor | None:
    """Character ids (B, T', W) cut or padded (no characters) to ``steps`` tokens."""
    if chars is None or chars.size(1) == steps:
        return chars
    if chars.size(1) > steps:
        return chars[:, :steps]
    return torch.nn.functional.pad(chars, (0, 0, 0, steps - chars.size(1)))


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
