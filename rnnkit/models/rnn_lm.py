"""Recurrent language model ``rnn_lm`` and its named presets.

Embedding → recurrent stack → (projection) → output layer, with every regularizer of the RNN-LM
literature as a config field: Zaremba et al. (2014) dropout on non-recurrent connections; Merity
et al. (2017) AWD-LSTM's locked dropouts, word-type embedding dropout and weight drop; tied
input/output embeddings (Press & Wolf 2017; Inan et al. 2017); residual connections and layer
norm. One ``forward`` serves training (T steps) and sampling (one step, carried state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.config import opt
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import register_architecture, register_model
from rnnkit.modules.cells import make_cell
from rnnkit.modules.dropout import embedding_dropout, make_dropout
from rnnkit.modules.recurrent import RecurrentStack, RecurrentState

_DROPOUTS = ("dropout", "dropout_input", "dropout_hidden", "dropout_output", "dropout_embed")


@dataclass(frozen=True)
class RNNLMConfig:
    """Options of ``rnn_lm`` (each is also ``--kebab-case`` on the command line)."""

    cell: str = opt("lstm", "recurrent cell: any registered cell (rnnkit models lists them)")
    embed_dim: int = opt(200, "word embedding size")
    hidden_size: int = opt(200, "hidden units per recurrent layer")
    num_layers: int = opt(2, "number of recurrent layers")
    dropout: float = opt(
        0.0,
        "Zaremba dropout on non-recurrent connections (embedding output, between layers, before "
        "the output layer); a site whose --dropout-input/-hidden/-output is > 0 uses that instead",
        resumable=True,
    )
    dropout_input: float = opt(
        0.0, "locked (variational) dropout on the embedding output; 0: off", resumable=True
    )
    dropout_hidden: float = opt(
        0.0, "locked dropout between recurrent layers; 0: off", resumable=True
    )
    dropout_output: float = opt(
        0.0, "locked dropout on the last layer's output; 0: off", resumable=True
    )
    dropout_embed: float = opt(
        0.0, "embedding (word-type) dropout: drop whole words; 0: off", resumable=True
    )
    weight_drop: float = opt(
        0.0, "DropConnect on hidden-to-hidden weights (one mask per batch)", resumable=True
    )
    tie_weights: bool = opt(False, "share the input embedding with the output layer")
    residual: bool = opt(False, "residual connections around recurrent layers of equal size")
    layer_norm: bool = opt(False, "layer-normalized cells (runs the reference, non-fused path)")
    init_range: float = opt(
        0.1,
        "init every parameter uniform in ±init-range (Zaremba); 0: PyTorch's defaults for the "
        "recurrent and linear layers, embedding uniform ±0.1 and output bias 0 (AWD-LSTM)",
    )

    def __post_init__(self) -> None:
        make_cell(self.cell)  # an unknown cell raises with the valid names and a suggestion
        for name in ("embed_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        for name in (*_DROPOUTS, "weight_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise RnnkitError(f"--{name.replace('_', '-')} must be in [0, 1)")
        if self.init_range < 0:
            raise RnnkitError("--init-range must be >= 0")


def _site_dropout(zaremba: float, locked: float) -> nn.Module:
    """One dropout site: locked with ``locked`` when > 0, else standard with ``zaremba``."""
    return make_dropout(locked, locked=True) if locked > 0 else make_dropout(zaremba, locked=False)


@register_model("rnn_lm", task="lm")
class RNNLanguageModel(nn.Module):
    """Recurrent language model (Elman/Jordan/LSTM/GRU) with the RNN-LM dropouts and tying."""

    config_class = RNNLMConfig

    def __init__(self, cfg: RNNLMConfig, vocab_size: int, padding_idx: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=padding_idx)
        self.drop_in = _site_dropout(cfg.dropout, cfg.dropout_input)
        locked_between = cfg.dropout_hidden > 0
        self.rnn = RecurrentStack(
            cfg.cell,
            cfg.embed_dim,
            cfg.hidden_size,
            cfg.num_layers,
            dropout=cfg.dropout_hidden if locked_between else cfg.dropout,
            locked_dropout=locked_between,
            residual=cfg.residual,
            layer_norm=cfg.layer_norm,
            weight_drop=cfg.weight_drop,
        )
        self.drop_out = _site_dropout(cfg.dropout, cfg.dropout_output)
        out_dim = cfg.embed_dim if cfg.tie_weights else cfg.hidden_size
        # Tying needs the decoder input to have the embedding's size; project when it does not.
        self.proj = (
            nn.Linear(cfg.hidden_size, out_dim, bias=False) if out_dim != cfg.hidden_size else None
        )
        self.decoder = nn.Linear(out_dim, vocab_size)
        if cfg.tie_weights:
            self.decoder.weight = self.embed.weight
        self.reset_parameters()

    @classmethod
    def build(cls, cfg: RNNLMConfig, dictionary: Dictionary) -> RNNLanguageModel:
        """A model for ``dictionary``'s vocabulary (its pad symbol is the padding index)."""
        return cls(cfg, len(dictionary), dictionary.pad_index)

    def reset_parameters(self) -> None:
        """Uniform ±init_range everywhere (Zaremba), or torch defaults + AWD's embedding init."""
        r = self.cfg.init_range
        with torch.no_grad():
            for name, p in self.named_parameters():
                if r > 0 and ".ln_" not in name:  # LayerNorm gains stay 1, biases 0
                    p.uniform_(-r, r)
            if r == 0:
                self.embed.weight.uniform_(-0.1, 0.1)  # N(0, 1) is far too large for an LM
                self.decoder.bias.zero_()
            self.embed.weight[self.embed.padding_idx].zero_()

    def init_state(self, batch_size: int, device: torch.device | None = None) -> RecurrentState:
        """Zero state for ``batch_size`` sequences, (L, B, H) tensors on ``device``."""
        return self.rnn.init_state(batch_size, device)

    def forward(
        self, tokens: Tensor, state: RecurrentState | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """``tokens`` (B, T) → logits (B, T, V) and the state after the last step."""
        if self.cfg.dropout_embed > 0:
            x = embedding_dropout(self.embed, tokens, self.cfg.dropout_embed, self.training)
        else:
            x = self.embed(tokens)  # (B, T, E)
        out, state = self.rnn(self.drop_in(x), state)  # (B, T, H)
        out = self.drop_out(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, E)
        return self.decoder(out), state


@register_architecture("lstm_lm_zaremba_small", model="rnn_lm")
def lstm_lm_zaremba_small() -> dict:
    """Zaremba et al. 2014 small LSTM LM: 2×200, no dropout, init ±0.1."""
    return dict(cell="lstm", embed_dim=200, hidden_size=200, num_layers=2, dropout=0.0,
                init_range=0.1)  # fmt: skip


@register_architecture("lstm_lm_zaremba_medium", model="rnn_lm")
def lstm_lm_zaremba_medium() -> dict:
    """Zaremba et al. 2014 medium LSTM LM: 2×650, dropout 0.5, init ±0.05."""
    return dict(cell="lstm", embed_dim=650, hidden_size=650, num_layers=2, dropout=0.5,
                init_range=0.05)  # fmt: skip


@register_architecture("lstm_lm_zaremba_large", model="rnn_lm")
def lstm_lm_zaremba_large() -> dict:
    """Zaremba et al. 2014 large LSTM LM: 2×1500, dropout 0.65, init ±0.04."""
    return dict(cell="lstm", embed_dim=1500, hidden_size=1500, num_layers=2, dropout=0.65,
                init_range=0.04)  # fmt: skip


@register_architecture("char_rnn", model="rnn_lm")
def char_rnn() -> dict:
    """Character-level LSTM (Karpathy's char-rnn): 2×512, embedding 64, dropout 0.25, init ±0.08.

    Sized for Tiny Shakespeare on two CPU cores: measured on an otherwise idle 2-core box at
    batch 64 × bptt 100 it trains at ~12.5k chars/s (2×384: ~18.8k), about 80 s per epoch, so a
    40-minute budget sees ~25 epochs (examples/shakespeare/README.md).
    """
    return dict(cell="lstm", embed_dim=64, hidden_size=512, num_layers=2, dropout=0.25,
                init_range=0.08)  # fmt: skip


@register_architecture("awd_lstm_lm", model="rnn_lm")
def awd_lstm_lm() -> dict:
    """AWD-LSTM (Merity et al. 2017): 3-layer LSTM 400/1150, tied, locked dropouts, weight drop.

    The paper's PTB values: dropout on word vectors (input) 0.4, between LSTM layers 0.3, on the
    last layer's output 0.4, embedding (word-type) dropout 0.1, weight drop 0.5. Its released PTB
    command uses --dropouth 0.25; for WikiText-2 set --dropout-input 0.65 (and hidden 0.2).
    """
    return dict(cell="lstm", embed_dim=400, hidden_size=1150, num_layers=3, tie_weights=True,
                dropout=0.0, dropout_input=0.4, dropout_hidden=0.3, dropout_output=0.4,
                dropout_embed=0.1, weight_drop=0.5, init_range=0.0)  # fmt: skip
