"""The "reversed PTB" workload shared by the seq2seq benchmarks, and a bare PyTorch model of it.

Source: the first 10,539 lines of ptb.train.txt; target: the same words in reverse order; decode
set: the first 1,000 lines of ptb.valid.txt reversed likewise. Model: 2-layer LSTM encoder and
decoder, 256 embeddings and hidden units, Luong ``general`` attention with input feeding, no
dropout. :class:`RawSeq2Seq` is that model written directly against torch (no rnnkit code), the
floor rnnkit's training loop is measured against.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.data.preprocess import PreprocessConfig, preprocess

PTB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ptb"
TRAIN_LINES, DECODE_LINES = 10_539, 1_000
MODEL = {
    "encoder_embed_dim": 256, "encoder_hidden_size": 256, "encoder_layers": 2,
    "decoder_embed_dim": 256, "decoder_hidden_size": 256, "decoder_layers": 2,
    "attention": "general", "input_feeding": True, "dropout": 0.0, "bridge": "copy",
}  # fmt: skip


def make_workload(root: Path) -> Path:
    """Write the raw pairs under ``root/raw`` and binarize them into ``root/data``."""
    if not (PTB / "ptb.train.txt").is_file():
        sys.exit(f"{PTB}: PTB is not there (the workload needs ../shared/data/ptb)")
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, split, n in (("ptb.train.txt", "train", TRAIN_LINES),
                           ("ptb.valid.txt", "valid", DECODE_LINES)):  # fmt: skip
        lines = (PTB / name).read_text().splitlines()[:n]
        (raw / f"{split}.src").write_text("".join(line.strip() + "\n" for line in lines))
        rev = [" ".join(reversed(line.split())) for line in lines]
        (raw / f"{split}.tgt").write_text("".join(line + "\n" for line in rev))
    cfg = PreprocessConfig(task="translation", source_lang="src", target_lang="tgt",
                           trainpref=str(raw / "train"), validpref=(str(raw / "valid"),),
                           destdir=str(root / "data"), force=True)  # fmt: skip
    preprocess(cfg)
    return root / "data"


class RawSeq2Seq(nn.Module):
    """2-layer LSTM encoder-decoder with general attention and input feeding, in plain torch."""

    def __init__(self, src_vocab: int, tgt_vocab: int, pad: int, dim: int = 256) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, dim, padding_idx=pad)
        self.encoder = nn.LSTM(dim, dim, 2, batch_first=True)
        self.tgt_embed = nn.Embedding(tgt_vocab, dim, padding_idx=pad)
        self.decoder = nn.LSTM(2 * dim, dim, 2, batch_first=True)
        self.w_a = nn.Linear(dim, dim, bias=False)
        self.w_c = nn.Linear(2 * dim, dim, bias=False)
        self.out = nn.Linear(dim, tgt_vocab)
        self.dim = dim
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for teacher forcing."""
        packed = nn.utils.rnn.pack_padded_sequence(
            self.src_embed(src), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, c) = self.encoder(packed)
        keys, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        mask = torch.arange(src.size(1))[None, :] < lengths[:, None]  # (B, S)
        projected = self.w_a(keys)  # (B, S, H)
        emb = self.tgt_embed(prev)  # (B, T, E)
        feed = emb.new_zeros(src.size(0), self.dim)
        state, outs = (h, c), []
        for t in range(prev.size(1)):
            x = torch.cat([emb[:, t], feed], dim=-1).unsqueeze(1)
            y, state = self.decoder(x, state)
            y = y.squeeze(1)  # (B, H)
            scores = torch.bmm(projected, y.unsqueeze(-1)).squeeze(-1)  # (B, S)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            ctx = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
            feed = torch.tanh(self.w_c(torch.cat([ctx, y], dim=-1)))
            outs.append(feed)
        return self.out(torch.stack(outs, dim=1))

    def loss(self, batch, pad: int) -> tuple[torch.Tensor, int]:
        logits = self(batch.src_tokens, batch.src_lengths, batch.prev_output_tokens)
        target = batch.target
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                               ignore_index=pad, reduction="sum")  # fmt: skip
        return loss, int((target != pad).sum())
