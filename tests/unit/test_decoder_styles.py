"""Decoder styles against plain references, and attention scores that declare their query.

Each style's reference below is an explicit loop over target steps written with torch ops on the
model's weights (read from its ``state_dict``, the checkpoint format): it shares the encoder and
bridge with the model, nothing of the decoder code under test. Tiny models (hidden 8, vocab 9),
one decoder layer, no dropout, CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import resolve_arch
from rnnkit.modules.attention import ATTENTION, DotScore
from rnnkit.modules.decoders import BahdanauDecoder, ChoDecoder, LuongDecoder, PlainDecoder

SMALL = {
    "encoder_embed_dim": 8,
    "encoder_hidden_size": 8,
    "decoder_embed_dim": 6,
    "decoder_hidden_size": 8,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "init_range": 1.0,
}  # fmt: skip  (large weights: differences show)


def build(arch: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    src, tgt = Dictionary(), Dictionary()
    for w in "a b c d e f".split():
        src.add_symbol(w)
    for w in "a b c x y".split():
        tgt.add_symbol(w)
    cls, cfg = resolve_arch(arch, SMALL, overrides)
    return cls.build(cfg, src, tgt).eval()


def batch() -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 3, 1])
    src = torch.randint(4, 10, (3, 5), generator=g)
    for i, n in enumerate(lengths.tolist()):
        src[i, n - 1], src[i, n:] = 2, 1  # </s>, then padding
    prev = torch.randint(4, 9, (3, 4), generator=g)
    prev[:, 0] = 2
    return src, lengths, prev


# --- the reference: one loop per style, torch ops only ----------------------------------------
def weight(sd: dict[str, Tensor], prefix: str, suffix: str) -> Tensor:
    """The one tensor under ``prefix`` named ``...suffix`` (robust to the stack's inner names)."""
    found = [v for k, v in sd.items() if k.startswith(prefix) and k.endswith(suffix)]
    assert len(found) == 1, (prefix, suffix, [k for k in sd if k.startswith(prefix)])
    return found[0]


def cell_step(sd: dict, cell: str, x: Tensor, h: Tensor, c: Tensor | None) -> tuple:
    """One layer of torch's LSTM or GRU, from the decoder stack's weights."""
    w_ih, w_hh = weight(sd, "rnn.", "weight_ih_l0"), weight(sd, "rnn.", "weight_hh_l0")
    b_ih, b_hh = weight(sd, "rnn.", "bias_ih_l0"), weight(sd, "rnn.", "bias_hh_l0")
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    r_i, z_i, n_i = gi.chunk(3, dim=-1)
    r_h, z_h, n_h = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
    n = torch.tanh(n_i + r * n_h)
    return (1 - z) * n + z * h, None


def attend(scores: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Masked softmax over source positions: scores (B, S) → context (B, K), weights (B, S)."""
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return (w.unsqueeze(-1) * keys).sum(1), w


Scorer = Callable[[dict, Tensor, Tensor], Tensor]  # (state dict, query (B, H), keys) → (B, S)


def general(sd: dict, q: Tensor, keys: Tensor) -> Tensor:
    return ((keys @ sd["attention.score.w_a.weight"].T) * q.unsqueeze(1)).sum(-1)


def additive(sd: dict, q: Tensor, keys: Tensor) -> Tensor:
    w_q, b_q = sd["attention.score.w_q.weight"], sd["attention.score.w_q.bias"]
    hidden = torch.tanh((q @ w_q.T + b_q).unsqueeze(1) + keys @ sd["attention.score.w_k.weight"].T)
    return (hidden @ sd["attention.score.v_a.weight"].T).squeeze(-1)


def reference(model: torch.nn.Module, style: str, score: Scorer | None = None) -> Tensor:
    """Log-probs (B, T, V) of the teacher-forced ``prev`` tokens of :func:`batch`, step by step."""
    sd, cell = model.state_dict(), model.cfg.cell
    src, lengths, prev = batch()
    enc = model.encoder(src, lengths)
    start = model.bridge(enc.final)
    h, c = start.h[0], None if start.c is None else start.c[0]  # one decoder layer
    keys, mask = enc.outputs, enc.mask  # (B, S, K), (B, S)
    summary = enc.final.h.permute(1, 0, 2).reshape(src.size(0), -1)  # Cho's c: one layer
    feed = torch.zeros_like(h)
    steps = []
    for t in range(prev.size(1)):
        e = sd["embed.weight"][prev[:, t]]  # (B, E)
        if style == "plain":
            h, c = cell_step(sd, cell, e, h, c)
            feat = h
        elif style == "cho":
            h, c = cell_step(sd, cell, torch.cat([e, summary], -1), h, c)
            readout = torch.cat([h, e, summary], -1)
            feat = torch.tanh(readout @ sd["readout.weight"].T + sd["readout.bias"])
        elif style == "bahdanau":
            ctx, _ = attend(additive(sd, h, keys), keys, mask)  # query: s_{t-1}
            h, c = cell_step(sd, cell, torch.cat([e, ctx], -1), h, c)
            readout = torch.cat([h, e, ctx], -1)
            feat = torch.tanh(readout @ sd["readout.weight"].T + sd["readout.bias"])
        else:  # luong with input feeding
            h, c = cell_step(sd, cell, torch.cat([e, feed], -1), h, c)
            ctx, _ = attend((score or general)(sd, h, keys), keys, mask)  # query: h_t
            feat = feed = torch.tanh(torch.cat([ctx, h], -1) @ sd["combine.w_c.weight"].T)
        steps.append(F.log_softmax(feat @ sd["out.weight"].T + sd["out.bias"], dim=-1))
    return torch.stack(steps, dim=1)


def decode_both_ways(model: torch.nn.Module) -> tuple[Tensor, Tensor]:
    """Log-probs of :func:`batch` from the training pass and from one ``step`` at a time."""
    src, lengths, prev = batch()
    with torch.no_grad():
        full = model(src, lengths, prev)[0].log_softmax(-1)
        state, steps = model.encode(src, lengths, extend=False), []
        for t in range(prev.size(1)):
            log_probs, state, _ = model.step(prev[:, t], state)
            steps.append(log_probs)
    return full, torch.stack(steps, dim=1)


STYLES = [
    ("plain", "seq2seq", {}, PlainDecoder),
    ("cho", "seq2seq_cho", {}, ChoDecoder),
    ("bahdanau", "bahdanau_rnnsearch", {"encoder_bidirectional": True}, BahdanauDecoder),
    ("luong", "attention_seq2seq", {}, LuongDecoder),
]


@pytest.mark.parametrize(("style", "arch", "overrides", "decoder"), STYLES)
def test_style_matches_its_plain_reference(
    style: str, arch: str, overrides: dict, decoder: type
) -> None:
    model = build(arch, **overrides)
    assert type(model.decoder) is decoder
    with torch.no_grad():
        expected = reference(model, style)
    full, steps = decode_both_ways(model)
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps, expected, atol=1e-5, rtol=1e-5)


# --- attention scores registered by a plugin (conftest's autouse fixture unregisters them) -----
class ScaledDot(DotScore):
    """Scaled dot product h_tᵀ h̄_s / √d (queries the current state, as DotScore)."""

    def forward(self, query: Tensor, projected: Tensor) -> Tensor:
        return super().forward(query, projected) / math.sqrt(query.size(-1))


def test_a_registered_score_works_with_input_feeding() -> None:
    ATTENTION.register("scaled_dot_test")(ScaledDot)
    model = build("attention_seq2seq", attention="scaled_dot_test", input_feeding=True)
    assert type(model.decoder) is LuongDecoder

    def scaled(sd: dict, q: Tensor, keys: Tensor) -> Tensor:
        return (keys * q.unsqueeze(1)).sum(-1) / math.sqrt(q.size(-1))

    with torch.no_grad():
        expected = reference(model, "luong", scaled)
    full, steps = decode_both_ways(model)
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps, expected, atol=1e-5, rtol=1e-5)
    src, lengths, prev = batch()
    assert model(src, lengths, prev)[1] is not None  # attention is used, not built and ignored


class PreviousDot(DotScore):
    """A dot score meant for the previous state s_{t-1}."""

    query = "previous"


def test_a_score_is_refused_where_its_query_cannot_be_used() -> None:
    ATTENTION.register("previous_dot_test")(PreviousDot)
    with pytest.raises(RnnkitError, match="input-feeding needs a Luong attention"):
        build("attention_seq2seq", attention="previous_dot_test", input_feeding=True)
    with pytest.raises(RnnkitError, match="local-m/local-p are Luong's"):
        build("attention_seq2seq", attention="previous_dot_test", input_feeding=False,
              attention_mode="local-m")  # fmt: skip
    # Without input feeding it is a Bahdanau-style decoder: attention used, not silently dropped.
    model = build("attention_seq2seq", attention="previous_dot_test", input_feeding=False)
    assert type(model.decoder) is BahdanauDecoder
    full, steps = decode_both_ways(model)
    torch.testing.assert_close(steps, full, atol=1e-6, rtol=1e-5)
    src, lengths, prev = batch()
    assert model(src, lengths, prev)[1] is not None


def test_a_score_with_an_unknown_query_is_a_clear_error() -> None:
    class Sideways(DotScore):
        query = "sideways"

    ATTENTION.register("sideways_test")(Sideways)
    with pytest.raises(RnnkitError, match="declares query 'sideways'"):
        build("attention_seq2seq", attention="sideways_test")


def test_no_registered_score_is_built_and_ignored() -> None:
    for name in ATTENTION.names():
        feeding = getattr(ATTENTION.get(name), "query", None) == "current"
        model = build("attention_seq2seq", attention=name, input_feeding=feeding,
                      encoder_hidden_size=8, decoder_hidden_size=8)  # fmt: skip
        src, lengths, prev = batch()
        assert model(src, lengths, prev)[1] is not None, name


# --- the checkpoint format -----------------------------------------------------------------------
def test_state_dict_keeps_the_flat_decoder_names_and_loads_them() -> None:
    model = build("attention_seq2seq", copy=True)
    keys = list(model.state_dict())
    assert "rnn.rnn.weight_ih_l0" in keys and "combine.w_c.weight" in keys
    assert not any(k.startswith("decoder.") for k in keys)
    assert any(n.startswith("decoder.rnn.") for n, _ in model.named_parameters())
    other = build("attention_seq2seq", copy=True)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(model.state_dict())  # strict: every flat key finds its module
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
