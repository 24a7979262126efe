"""Encoder–decoder RNNs for translation: ``seq2seq``, ``seq2seq_cho`` and ``attention_seq2seq``.

One model class holds the parts every decoder style shares — the recurrent encoder and bridge
(:mod:`rnnkit.modules.encoder`), the target embedding and the output layers — and one decoder
object, the style the config asks for (:mod:`rnnkit.modules.decoders`): plain (Sutskever et al.
2014, ``--bridge copy``, ``--reverse-source``), Cho (``--feed-context``), Bahdanau (a score that
queries the previous state, ``--attention bahdanau``) or Luong (a score that queries the current
state, ``--attention dot|general|concat``, ``--input-feeding``).

``--copy`` adds a pointer-generator (See et al. 2017): p_gen = σ(w[c_t; h_t; E y_{t-1}]) mixes the
vocabulary distribution with the attention over source positions. While training, a source word
the target dictionary lacks is credited to ``<unk>``; while decoding, the output space is
extended by the source vocabulary (id ``V + source id``) so such a word can be copied as itself.

``forward`` runs T target steps and :meth:`Seq2Seq.step` one; both go through the same
:meth:`Seq2Seq.decode` (the incremental state is a typed :class:`Seq2SeqState`), so incremental
decoding equals the full pass by construction — and tests check it, per style, against plain
reference loops too. The decoder's modules keep the flat names of the checkpoint format
(``rnn.*``, ``attention.*``, ``combine.*``, ``readout.*``) in ``state_dict``; see
:data:`DECODER_PARTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import opt
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.generation.decoder import BatchState
from rnnkit.models import register_architecture, register_model
from rnnkit.modules.attention import ATTENTION, MODES
from rnnkit.modules.cells import CELL, make_cell
from rnnkit.modules.decoders import (
    DecoderOut,
    DecoderSpec,
    RecurrentDecoder,
    build_decoder,
    decoder_problems,
)
from rnnkit.modules.encoder import Bridge, EncoderOut, RecurrentEncoder

# The decoder's modules, saved (and loaded) under these top-level names as before the decoder
# styles became classes, so every checkpoint keeps one format.
DECODER_PARTS = ("rnn", "attention", "combine", "readout")


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Options of the encoder–decoder models (fairseq's LSTM names; ``--kebab-case`` flags)."""

    cell: str = opt(
        "lstm", "recurrent cell of encoder and decoder: any registered cell (rnnkit models)"
    )
    encoder_embed_dim: int = opt(256, "source embedding size")
    encoder_hidden_size: int = opt(256, "encoder hidden units per direction")
    encoder_layers: int = opt(1, "encoder layers")
    encoder_bidirectional: bool = opt(False, "bidirectional encoder")
    decoder_embed_dim: int = opt(256, "target embedding size (and the readout size)")
    decoder_hidden_size: int = opt(256, "decoder hidden units")
    decoder_layers: int = opt(1, "decoder layers")
    attention: str = opt("none", "none, or a registered attention score (rnnkit models lists them)")
    attention_mode: str = opt("global", "Luong's alignment: global, local-m, local-p")
    attention_window: int = opt(10, "local attention: window half-width D (σ = D/2)")
    input_feeding: bool = opt(False, "feed h̃_{t-1} into the next decoder step (Luong)")
    feed_context: bool = opt(False, "feed the encoder summary to every step and the readout (Cho)")
    reverse_source: bool = opt(False, "reverse the source words (Sutskever)")
    bridge: Literal["copy", "linear", "zero"] = opt(
        "linear", "decoder initial state from the encoder's final: copy, linear (tanh), zero"
    )
    dropout: float = opt(
        0.0, "dropout on embeddings, between layers and before the output", resumable=True
    )
    residual: bool = opt(False, "residual connections between recurrent layers of equal size")
    share_decoder_input_output_embed: bool = opt(False, "tie the target embedding and output")
    copy: bool = opt(False, "pointer-generator copy from the source (needs attention)")
    init_range: float = opt(0.1, "init every parameter uniform in ±init-range (0: torch's)")

    def __post_init__(self) -> None:
        make_cell(self.cell)  # any registered cell; an unknown one lists the valid names
        for name in ("encoder_embed_dim", "encoder_hidden_size", "encoder_layers",
                     "decoder_embed_dim", "decoder_hidden_size", "decoder_layers"):  # fmt: skip
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        if self.attention != "none":
            ATTENTION.get(self.attention)  # unknown names list the valid ones
        if self.attention_mode not in MODES:
            raise RnnkitError(f"--attention-mode must be one of {', '.join(MODES)}")
        rules = [
            (not self.feed_context or self.attention == "none",
             "--feed-context is the attention-free Cho decoder; attention already feeds context"),
            (not self.copy or self.attention != "none", "--copy needs an --attention"),
            (0.0 <= self.dropout < 1.0, "--dropout must be in [0, 1)"),
        ]  # fmt: skip
        problems = decoder_problems(self.attention, self.input_feeding, self.attention_mode)
        problems += [message for ok, message in rules if not ok]
        if problems:
            raise RnnkitError("; ".join(problems))


@dataclass(frozen=True)
class Seq2SeqState(BatchState):
    """The incremental decoding state: the decoder style's state and, for a copy model, where
    each source position lands in the (extended) target vocabulary."""

    decoder: BatchState
    src_map: Tensor | None = None  # (B, S) long


class Seq2Seq(nn.Module):
    """RNN encoder–decoder: shared encoder, bridge, embedding and output; one decoder style."""

    config_class = Seq2SeqConfig

    def __init__(self, cfg: Seq2SeqConfig, src_dict: Dictionary, tgt_dict: Dictionary) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad, self.unk = tgt_dict.pad_index, tgt_dict.unk_index
        self.vocab_size = len(tgt_dict)
        self.encoder = RecurrentEncoder(
            cfg.cell, len(src_dict), src_dict.pad_index, cfg.encoder_embed_dim,
            cfg.encoder_hidden_size, cfg.encoder_layers, cfg.encoder_bidirectional, cfg.dropout,
            cfg.residual, cfg.reverse_source,
        )  # fmt: skip
        enc, has_c = self.encoder, CELL.get(cfg.cell).has_cell_state
        keys, h, e = enc.output_size, cfg.decoder_hidden_size, cfg.decoder_embed_dim
        self.bridge = Bridge(cfg.bridge, cfg.encoder_layers, enc.dirs, cfg.encoder_hidden_size,
                             cfg.decoder_layers, h, has_c)  # fmt: skip
        self.embed = nn.Embedding(self.vocab_size, e, padding_idx=self.pad)
        self.drop = nn.Dropout(cfg.dropout)
        # Built here, between the embedding and the output, so parameters (and their random
        # init) come in the order they always had: optimizer states of old runs still fit.
        spec = DecoderSpec(
            cell=cfg.cell, embed_dim=e, hidden_size=h, layers=cfg.decoder_layers, key_size=keys,
            encoder_dirs=enc.dirs, dropout=cfg.dropout, residual=cfg.residual,
            attention=cfg.attention, attention_mode=cfg.attention_mode,
            attention_window=cfg.attention_window, input_feeding=cfg.input_feeding,
            feed_context=cfg.feed_context, copy=cfg.copy,
        )  # fmt: skip
        self.decoder: RecurrentDecoder[BatchState] = build_decoder(spec)
        feature = self.decoder.feature_size
        out_dim = e if cfg.share_decoder_input_output_embed else feature
        self.proj = nn.Linear(feature, out_dim, bias=False) if out_dim != feature else None
        self.out = nn.Linear(out_dim, self.vocab_size)
        if cfg.share_decoder_input_output_embed:
            self.out.weight = self.embed.weight
        self.p_gen = nn.Linear(keys + h + e, 1) if cfg.copy else None
        # Where each source id lands in the target space when copied (see the module docstring).
        src_to_tgt = torch.tensor([tgt_dict.index(src_dict[i]) for i in range(len(src_dict))])
        self.register_buffer("src_to_tgt", src_to_tgt, persistent=False)
        self.register_state_dict_post_hook(_flat_decoder_keys)
        self.register_load_state_dict_pre_hook(_nested_decoder_keys)
        self.reset_parameters()

    @classmethod
    def build(cls, cfg: Seq2SeqConfig, src_dict: Dictionary, tgt_dict: Dictionary) -> Seq2Seq:
        return cls(cfg, src_dict, tgt_dict)

    def reset_parameters(self) -> None:
        """Uniform ±init_range (Sutskever: 0.08, Luong: 0.1); padding embeddings stay zero."""
        r = self.cfg.init_range
        if r <= 0:
            return
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-r, r)
            self.embed.weight[self.pad].zero_()
            self.encoder.embed.weight[self.encoder.embed.padding_idx].zero_()

    def encode(self, src_tokens: Tensor, src_lengths: Tensor, extend: bool = True) -> Seq2SeqState:
        """Run the encoder: the initial :class:`Seq2SeqState` for ``src_tokens`` (B, S).

        ``extend`` (decoding) maps copyable source words the target vocabulary lacks to the
        extended ids ``V + source id``; training credits them to ``<unk>`` instead.
        """
        enc: EncoderOut = self.encoder(src_tokens, src_lengths)
        state = self.decoder.start(enc, self.bridge(enc.final))
        if self.p_gen is None:
            return Seq2SeqState(state)
        mapped = self.src_to_tgt[src_tokens]  # (B, S)
        if extend:
            missing = (mapped == self.unk) & (src_tokens != self.encoder.embed.padding_idx)
            missing &= src_tokens != self.unk
            mapped = torch.where(missing, self.vocab_size + src_tokens, mapped)
        return Seq2SeqState(state, mapped.masked_fill(~enc.mask, self.pad))

    def decode(
        self,
        prev_tokens: Tensor,
        state: Seq2SeqState,
        normalize: bool = True,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Seq2SeqState, Tensor | None]:
        """T target steps from ``state``: ``prev_tokens`` (B, T) → log-probs (B, T, V'),
        the state after step T, and attention (B, T, S) (None without attention).

        V' is V, or V + |source vocabulary| for a copy model decoding with extended ids. With
        ``normalize=False`` the scores are logits (log-probs up to a constant per position:
        cross-entropy normalizes them itself, so training skips one log-softmax); a copy model
        always returns log-probs. With ``keep`` (B, T) bool the scores are those of the kept
        positions only, (N, V'), row-major: training skips the output layer at padding.
        """
        tokens = prev_tokens.masked_fill(prev_tokens >= self.vocab_size, self.unk)
        emb = self.drop(self.embed(tokens))  # (B, T, E)
        out, dec_state = self.decoder(emb, state.decoder)
        scores = self._output(out, emb, state.src_map, normalize, keep)
        return scores, state.replace(decoder=dec_state), out.attention

    def _output(
        self,
        out: DecoderOut,
        emb: Tensor,
        src_map: Tensor | None,
        normalize: bool = True,
        keep: Tensor | None = None,
    ) -> Tensor:
        """Features (B, T, F) → log-probs (B, T, V') (or (N, V') at ``keep``), mixed with the
        copy distribution if any."""
        x = self.drop(out.features)  # dropout before selecting: the same draws either way
        if keep is not None and self.p_gen is None:
            x = x[keep]  # (N, F)
            keep = None
        if self.proj is not None:
            x = self.proj(x)
        logits = self.out(x)  # (B, T, V)
        attn = out.attention
        if self.p_gen is None or attn is None or out.context is None or src_map is None:
            scores = F.log_softmax(logits, dim=-1) if normalize else logits
            return scores if keep is None else scores[keep]
        features = torch.cat([out.context, out.query, emb], dim=-1)
        p_gen = torch.sigmoid(self.p_gen(features))  # (B, T, 1)
        size = max(self.vocab_size, int(src_map.max()) + 1) if src_map.numel() else self.vocab_size
        if size > self.vocab_size:
            size = self.vocab_size + len(self.src_to_tgt)  # a fixed width for beam bookkeeping
        probs = F.softmax(logits, dim=-1) * p_gen
        probs = F.pad(probs, (0, size - self.vocab_size))
        index = src_map.unsqueeze(1).expand(-1, attn.size(1), -1)  # (B, T, S)
        probs = probs.scatter_add(2, index, attn * (1 - p_gen))
        log_probs = torch.log(probs.clamp(min=1e-12))
        return log_probs if keep is None else log_probs[keep]

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced pass: logits (B, T, V) (log-probs for a copy model; either way what
        cross-entropy takes) and attention (B, T, S) or None. With ``keep`` (B, T) bool, the
        logits of the kept positions only, (N, V) in row-major order (the loss's targets)."""
        state = self.encode(src_tokens, src_lengths, extend=False)
        scores, _, attn = self.decode(prev_output_tokens, state, normalize=False, keep=keep)
        return scores, attn

    def step(
        self, prev_tokens: Tensor, state: Seq2SeqState
    ) -> tuple[Tensor, Seq2SeqState, Tensor | None]:
        """One step for every row (the :class:`IncrementalDecoder` contract): (B,) → (B, V')."""
        log_probs, state, attn = self.decode(prev_tokens.unsqueeze(1), state)
        return log_probs.squeeze(1), state, None if attn is None else attn.squeeze(1)


def _flat_decoder_keys(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict post-hook: ``decoder.rnn.*`` → ``rnn.*`` (the format's names), order kept."""
    nested = tuple(f"{prefix}decoder.{part}." for part in DECODER_PARTS)
    items = list(state.items())
    state.clear()
    for key, value in items:
        if key.startswith(nested):
            key = prefix + key[len(prefix) + len("decoder.") :]
        state[key] = value


def _nested_decoder_keys(module: nn.Module, state: dict, prefix: str, *_: object) -> None:
    """Load pre-hook: ``rnn.*`` → ``decoder.rnn.*``, the modules' paths since decoder styles."""
    flat = tuple(f"{prefix}{part}." for part in DECODER_PARTS)
    for key in [k for k in state if k.startswith(flat)]:
        state[prefix + "decoder." + key[len(prefix) :]] = state.pop(key)


def _help(name: str) -> str:
    return Seq2SeqConfig.__dataclass_fields__[name].metadata["help"]


@dataclass(frozen=True)
class SutskeverConfig(Seq2SeqConfig):
    """``seq2seq`` defaults: 4-layer LSTMs, final state copied, source reversed, init ±0.08."""

    encoder_layers: int = opt(4, _help("encoder_layers"))
    decoder_layers: int = opt(4, _help("decoder_layers"))
    bridge: Literal["copy", "linear", "zero"] = opt("copy", _help("bridge"))
    reverse_source: bool = opt(True, _help("reverse_source"))
    init_range: float = opt(0.08, _help("init_range"))


@dataclass(frozen=True)
class ChoConfig(Seq2SeqConfig):
    """``seq2seq_cho`` defaults: GRU, summary fed to every step and the readout, tanh bridge."""

    cell: str = opt("gru", _help("cell"))
    feed_context: bool = opt(True, _help("feed_context"))


@dataclass(frozen=True)
class AttentionConfig(Seq2SeqConfig):
    """``attention_seq2seq`` defaults: Luong's global ``general`` attention with input feeding."""

    attention: str = opt("general", _help("attention"))
    input_feeding: bool = opt(True, _help("input_feeding"))


@register_model("seq2seq", task="translation")
class SutskeverSeq2Seq(Seq2Seq):
    """Sutskever et al. 2014: deep LSTM encoder-decoder; final encoder state starts the decoder."""

    config_class = SutskeverConfig


@register_model("seq2seq_cho", task="translation")
class ChoSeq2Seq(Seq2Seq):
    """Cho et al. 2014: GRU encoder-decoder; the context vector feeds every decoder step."""

    config_class = ChoConfig


@register_model("attention_seq2seq", task="translation")
class AttentionSeq2Seq(Seq2Seq):
    """Attention encoder-decoder: Bahdanau or Luong (global/local-m/local-p, input feeding)."""

    config_class = AttentionConfig


@register_architecture("luong_wmt15", model="attention_seq2seq")
def luong_wmt15() -> dict:
    """Luong et al. 2015: 4x1000 LSTM, local-p general attention, input feeding, dropout 0.2."""
    return {
        "encoder_embed_dim": 1000, "encoder_hidden_size": 1000, "encoder_layers": 4,
        "decoder_embed_dim": 1000, "decoder_hidden_size": 1000, "decoder_layers": 4,
        "attention": "general", "attention_mode": "local-p", "attention_window": 10,
        "input_feeding": True, "bridge": "copy", "dropout": 0.2, "init_range": 0.1,
    }  # fmt: skip


@register_architecture("bahdanau_rnnsearch", model="attention_seq2seq")
def bahdanau_rnnsearch() -> dict:
    """Bahdanau et al. 2015 RNNsearch: bi-GRU encoder 1000, GRU decoder 1000, additive attention."""
    return {
        "cell": "gru", "encoder_embed_dim": 620, "encoder_hidden_size": 1000,
        "encoder_bidirectional": True, "decoder_embed_dim": 620, "decoder_hidden_size": 1000,
        "attention": "bahdanau", "input_feeding": False, "bridge": "linear",
    }  # fmt: skip


@register_architecture("multi30k", model="attention_seq2seq")
def multi30k() -> dict:
    """Our Multi30k En-De recipe: bi-LSTM 256 encoder, LSTM 512 decoder, general + input feeding."""
    return {
        "encoder_embed_dim": 256, "encoder_hidden_size": 256, "encoder_bidirectional": True,
        "decoder_embed_dim": 256, "decoder_hidden_size": 512, "attention": "general",
        "input_feeding": True, "bridge": "linear", "dropout": 0.3,
        "share_decoder_input_output_embed": True,
    }  # fmt: skip
