"""The ``rnn_lm`` model: shapes, tying, carried state, config resolution and presets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.config import kebab
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import ARCH_REGISTRY, resolve_arch
from rnnkit.models.rnn_lm import RNNLanguageModel, RNNLMConfig
from rnnkit.modules.dropout import LockedDropout
from rnnkit.modules.recurrent import RecurrentState

PRESETS = ["lstm_lm_zaremba_small", "lstm_lm_zaremba_medium", "lstm_lm_zaremba_large"]
PRESETS += ["char_rnn", "awd_lstm_lm"]


@pytest.fixture
def dictionary() -> Dictionary:
    d = Dictionary()
    for w in "abcdef":
        d.add_symbol(w)
    return d  # 10 symbols


def tiny(dictionary: Dictionary, **fields) -> RNNLanguageModel:
    torch.manual_seed(0)
    cfg = RNNLMConfig(**{"embed_dim": 8, "hidden_size": 8, **fields})
    return RNNLanguageModel.build(cfg, dictionary)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu", "jordan_tanh"])
def test_forward_shapes(dictionary, cell):
    model = tiny(dictionary, cell=cell, num_layers=2)
    tokens = torch.randint(0, len(dictionary), (3, 5))
    logits, state = model(tokens)
    assert logits.shape == (3, 5, len(dictionary))
    assert isinstance(state, RecurrentState) and state.h.shape == (2, 3, 8)
    assert (state.c is not None) == (cell == "lstm")
    assert model.init_state(3).h.shape == (2, 3, 8)
    assert model.embed.padding_idx == dictionary.pad_index


def test_tied_weights_share_the_tensor(dictionary):
    model = tiny(dictionary, tie_weights=True)
    assert model.decoder.weight is model.embed.weight and model.proj is None
    n_untied = sum(p.numel() for p in tiny(dictionary).parameters())
    assert n_untied - sum(p.numel() for p in model.parameters()) == len(dictionary) * 8


def test_tied_weights_project_when_sizes_differ(dictionary):
    model = tiny(dictionary, tie_weights=True, embed_dim=6, hidden_size=8)
    assert isinstance(model.proj, nn.Linear) and model.proj.weight.shape == (6, 8)
    assert model.decoder.weight is model.embed.weight
    logits, _ = model(torch.tensor([[4, 5, 6]]))
    assert logits.shape == (1, 3, len(dictionary))
    assert tiny(dictionary, embed_dim=6).proj is None  # untied: the decoder reads H directly


@pytest.mark.parametrize("fields", [{}, {"cell": "gru", "residual": True}, {"layer_norm": True}])
def test_carried_state_equals_one_long_forward(dictionary, fields):
    model = tiny(dictionary, num_layers=2, **fields).eval()
    tokens = torch.randint(4, len(dictionary), (2, 9))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :4])
    second, _ = model(tokens[:, 4:], state.detach())
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)


def test_zaremba_path_is_one_fused_lstm(dictionary):
    model = tiny(dictionary, dropout=0.5, num_layers=2)
    assert type(model.rnn.rnn) is nn.LSTM and model.rnn.single_call
    assert model.rnn.rnn.num_layers == 2 and model.rnn.rnn.dropout == 0.5
    assert isinstance(model.drop_in, nn.Dropout) and isinstance(model.drop_out, nn.Dropout)


def test_awd_dropouts_are_locked_and_per_layer(dictionary):
    model = tiny(dictionary, dropout_input=0.4, dropout_hidden=0.3, dropout_output=0.4)
    assert isinstance(model.drop_in, LockedDropout) and isinstance(model.rnn.between, LockedDropout)
    assert not model.rnn.single_call and model.rnn.rnn.dropout == 0.0
    model.train()
    a, _ = model(torch.tensor([[4, 5, 6, 7]]))
    b, _ = model(torch.tensor([[4, 5, 6, 7]]))
    assert not torch.allclose(a, b)  # dropout is active in training
    model.eval()
    torch.testing.assert_close(model(torch.tensor([[4, 5]]))[0], model(torch.tensor([[4, 5]]))[0])


def test_init_range(dictionary):
    model = tiny(dictionary, init_range=0.01)
    for name, p in model.named_parameters():
        assert p.abs().max() <= 0.01, name
    assert not model.embed.weight[dictionary.pad_index].any()
    default = tiny(dictionary, init_range=0.0, hidden_size=16)
    assert not default.decoder.bias.any() and default.embed.weight.abs().max() <= 0.1
    assert default.rnn.rnn.weight_hh_l0.abs().max() > 0.1  # torch's ±1/√16


def test_resolve_arch_overrides_and_unknown_field():
    cls, cfg = resolve_arch("lstm_lm_zaremba_small", {"hidden-size": "650", "dropout": "0.5"})
    assert cls is RNNLanguageModel
    assert (cfg.hidden_size, cfg.dropout, cfg.num_layers, cfg.init_range) == (650, 0.5, 2, 0.1)
    with pytest.raises(RnnkitError, match="did you mean 'hidden-size'"):
        resolve_arch("lstm_lm_zaremba_small", {"hiden-size": "650"})
    with pytest.raises(RnnkitError, match="did you mean 'gru'"):
        resolve_arch("rnn_lm", {"cell": "gruu"})
    with pytest.raises(RnnkitError, match="dropout"):
        resolve_arch("rnn_lm", {"dropout": "1.5"})


def test_every_field_has_help_and_kebab_spelling():
    import dataclasses

    for f in dataclasses.fields(RNNLMConfig):
        assert f.metadata.get("help"), f.name
    names = {kebab(f.name) for f in dataclasses.fields(RNNLMConfig)}
    assert {"cell", "embed-dim", "hidden-size", "num-layers", "dropout", "tie-weights"} <= names


@pytest.mark.parametrize("arch", PRESETS)
def test_presets_resolve_and_build(arch, dictionary):
    assert ARCH_REGISTRY.entry(arch).description
    _, cfg = resolve_arch(arch)
    if cfg.hidden_size > 700:  # the big ones: build a scaled copy of the same structure
        cfg = resolve_arch(arch, {"hidden-size": 16, "embed-dim": 8})[1]
    model = RNNLanguageModel.build(cfg, dictionary)
    logits, _ = model(torch.tensor([[4, 5, 6]]))
    assert logits.shape == (1, 3, len(dictionary))


def test_preset_values():
    expect = {
        "lstm_lm_zaremba_small": (200, 2, 0.0, 0.1),
        "lstm_lm_zaremba_medium": (650, 2, 0.5, 0.05),
        "lstm_lm_zaremba_large": (1500, 2, 0.65, 0.04),
    }
    for arch, values in expect.items():
        cfg = resolve_arch(arch)[1]
        assert (cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.init_range) == values
    awd = resolve_arch("awd_lstm_lm")[1]
    assert (awd.num_layers, awd.embed_dim, awd.hidden_size, awd.tie_weights) == (3, 400, 1150, True)
    assert (awd.dropout_input, awd.dropout_hidden, awd.dropout_output) == (0.4, 0.3, 0.4)
    assert (awd.dropout_embed, awd.weight_drop) == (0.1, 0.5)
