"""The one recurrent stack: every cell in every model, packed rows on every path, old checkpoint
names, threads, and the documented cell plugin (``docs/overview.md``) run as written."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import resolve_arch
from rnnkit.models.rnn_lm import RNNLanguageModel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.tagger import RNNTagger
from rnnkit.modules.cells import CELL
from rnnkit.modules.encoder import RecurrentEncoder
from rnnkit.modules.recurrent import RecurrentStack, RecurrentState
from rnnkit.training.checkpoint import load_weights

OVERVIEW = Path(__file__).resolve().parents[2] / "docs" / "overview.md"
TOKENS = torch.tensor([[4, 5, 6, 7, 2], [5, 6, 2, 1, 1], [7, 2, 1, 1, 1]])  # right-padded, pad 1
LENGTHS = torch.tensor([5, 3, 2])
TINY = {"embed_dim": 8, "hidden_size": 8}


def vocab(*symbols: str) -> Dictionary:
    d = Dictionary()
    for s in symbols:
        d.add_symbol(s)
    return d


WORDS, TAGS = vocab(*"abcdef"), vocab("O", "B-x", "I-x")


def encoder(cell: str, layers: int = 2, residual: bool = False) -> RecurrentEncoder:
    torch.manual_seed(0)
    return RecurrentEncoder(cell, 10, 1, 6, 8, layers, bidirectional=True, residual=residual)


def assert_rows_alone_equal_batch(run, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
    """``run(tokens, lengths) -> (out (B, T, D), final (B, D))``: each row alone gives the
    same as in the padded batch, and zeros past its length."""
    out, final = run(tokens, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, alone_final = run(tokens[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(out[i, :n], alone[0])
        torch.testing.assert_close(final[i], alone_final[0])
        assert not out[i, n:].any()


@pytest.mark.parametrize("cell", CELL.names())
def test_every_cell_works_in_every_model(cell):
    torch.manual_seed(0)
    _, lm_cfg = resolve_arch("rnn_lm", {**TINY, "cell": cell, "num_layers": 2})
    lm = RNNLanguageModel.build(lm_cfg, WORDS).eval()
    logits, state = lm(TOKENS)
    steps, s = [], None
    for t in range(TOKENS.size(1)):  # one step at a time: the same function
        o, s = lm(TOKENS[:, t : t + 1], s)
        steps.append(o)
    torch.testing.assert_close(torch.cat(steps, 1), logits, atol=1e-5, rtol=1e-5)
    enc = encoder(cell).eval()
    assert_rows_alone_equal_batch(
        lambda x, n: (lambda e: (e.outputs, e.final.h.transpose(0, 1).flatten(1)))(enc(x, n)),
        TOKENS,
        LENGTHS,
    )
    _, tag_cfg = resolve_arch("rnn_tagger", {**TINY, "cell": cell, "num_layers": 2})
    tagger = RNNTagger.build(tag_cfg, WORDS, TAGS).eval()
    assert_rows_alone_equal_batch(tagger.encoder, TOKENS, LENGTHS)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("residual", [False, True])
def test_packed_rows_agree_on_the_fused_and_reference_paths(cell, residual):
    """Packed sequences on the fused kernels (one call, or per layer) and masked reference
    steps compute the same outputs and final states, in training too (gradients)."""
    torch.manual_seed(0)
    fused = RecurrentStack(cell, 6, 8, 2, bidirectional=True, residual=residual)
    ref = RecurrentStack(cell, 6, 8, 2, bidirectional=True, residual=residual, force_reference=True)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(3, 5, 6, requires_grad=True)
    state = RecurrentState(*(torch.randn(4, 3, 8) for _ in range(2 if cell == "lstm" else 1)))
    results = []
    for stack in (fused, ref):
        out, final = stack(x, state, LENGTHS)
        grads = torch.autograd.grad(out.pow(2).sum() + final.h.sum(), [x, *stack.parameters()])
        results.append((out, final.h, *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_residual_encoder_equals_torch_layers_on_packed_rows(p):
    """Against an independent reference: one ``nn.LSTM`` per layer over packed rows, dropout
    between them and residual sums of the dropped inputs, as the encoder was written before the
    one stack (in training, with the same dropout draws)."""
    torch.manual_seed(0)
    enc = RecurrentEncoder("lstm", 10, 1, 6, 8, 3, bidirectional=True, dropout=p, residual=True)
    layers = [
        nn.LSTM(6 if k == 0 else 16, 8, batch_first=True, bidirectional=True) for k in range(3)
    ]
    for k, layer in enumerate(layers):
        for name, _ in layer.named_parameters():
            getattr(layer, name).data.copy_(getattr(enc.rnn.rnn, name.replace("_l0", f"_l{k}")))
    torch.manual_seed(1)
    got = enc(TOKENS, LENGTHS)
    torch.manual_seed(1)
    want, hs = F.dropout(enc.embed(TOKENS), p), []
    for k, layer in enumerate(layers):
        want = F.dropout(want, p) if k else want
        packed = pack_padded_sequence(want, LENGTHS, batch_first=True, enforce_sorted=False)
        out, (h, _) = layer(packed)
        y, _ = pad_packed_sequence(out, batch_first=True, total_length=TOKENS.size(1))
        want = y + want if y.shape == want.shape else y
        hs.append(h)
    torch.testing.assert_close(got.outputs, F.dropout(want, p), rtol=0, atol=0)
    torch.testing.assert_close(got.final.h, torch.cat(hs), rtol=0, atol=0)


@pytest.mark.parametrize("residual", [False, True])
def test_checkpoints_with_the_old_layer_names_load(residual):
    """Before the one stack the encoder held ``rnns.{i}`` (one module, or one per layer with
    residual connections) and the tagger its torch module as ``rnn``: both still load."""
    new = encoder("gru", residual=residual).state_dict()
    old = {}
    for key, value in new.items():
        m = re.fullmatch(r"rnn\.rnn\.(\w+)_l(\d)(_reverse)?", key)
        if m is None:
            old[key] = value
        elif residual:  # one single-layer module per layer
            old[f"rnns.{m[2]}.{m[1]}_l0{m[3] or ''}"] = value
        else:
            old[f"rnns.0.{m[1]}_l{m[2]}{m[3] or ''}"] = value
    fresh = RecurrentEncoder("gru", 10, 1, 6, 8, 2, bidirectional=True, residual=residual)
    load_weights(fresh, old)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, new[key]), key
    _, cfg = resolve_arch("rnn_tagger", TINY)
    tagger = RNNTagger.build(cfg, WORDS, TAGS)
    state = tagger.state_dict()
    old_tagger = {k.replace("encoder.rnn.rnn.", "encoder.rnn."): v for k, v in state.items()}
    assert old_tagger != state
    load_weights(RNNTagger.build(cfg, WORDS, TAGS), old_tagger)


def test_two_threads_stepping_at_once_get_one_threads_results():
    """Few-row single steps (beam search of one sentence) and many-row ones run in two threads
    at once give what one thread gives, bit for bit, and nobody flips oneDNN for the process."""
    torch.manual_seed(0)
    stack = RecurrentStack("lstm", 8, 16, 2).eval()
    inputs = {rows: torch.randn(rows, 1, 8) for rows in (2, 64)}
    want = {rows: stack(x)[0] for rows, x in inputs.items()}
    got: dict[int, list[torch.Tensor]] = {rows: [] for rows in inputs}
    flags, done = set(), threading.Event()

    def run(rows: int) -> None:
        for _ in range(60):
            got[rows].append(stack(inputs[rows])[0])

    def watch() -> None:
        while not done.is_set():
            flags.add(torch.backends.mkldnn.enabled)

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=run, args=(rows,)) for rows in inputs]
    with torch.no_grad():
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    done.set()
    watcher.join()
    assert flags == {torch.backends.mkldnn.enabled}
    for rows, outs in got.items():
        assert len(outs) == 60 and all(torch.equal(o, want[rows]) for o in outs)


def test_a_function_registered_as_a_cell_is_refused_when_options_are_read():
    @CELL.register("not_a_cell")
    def step(x, h):  # what the old instructions said to register
        return h

    with pytest.raises(RnnkitError, match="not a subclass of rnnkit.modules.cells.Cell"):
        resolve_arch("rnn_lm", {"cell": "not_a_cell"})


def documented_cell_plugin() -> str:
    """The Python block after ``<!-- cell-plugin-example -->`` in docs/overview.md, dedented."""
    text = OVERVIEW.read_text(encoding="utf-8")
    match = re.search(r"<!-- cell-plugin-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/overview.md lost its cell plugin example"
    lines = match[1].splitlines()
    indent = min(len(s) - len(s.lstrip()) for s in lines if s.strip())
    return "\n".join(s[indent:] for s in lines)


def test_the_documented_cell_plugin_works_in_every_model():
    """rnn_lm (weight drop, backward), a bidirectional encoder, rnn_tagger, attention_seq2seq."""
    exec(compile(documented_cell_plugin(), str(OVERVIEW), "exec"), {"__name__": "plugin"})
    assert "mgu" in CELL
    torch.manual_seed(0)
    _, lm_cfg = resolve_arch("rnn_lm", {**TINY, "cell": "mgu", "weight_drop": 0.5})
    lm = RNNLanguageModel.build(lm_cfg, WORDS)
    logits, state = lm(TOKENS)
    logits.sum().backward()
    assert logits.shape == (3, 5, len(WORDS)) and state.h.shape == (2, 3, 8)
    assert lm.rnn.rnn.weight_hf_l1.grad is not None and lm.rnn.reference
    enc = encoder("mgu").eval()
    out = enc(TOKENS, LENGTHS)
    assert out.outputs.shape == (3, 5, 16) and out.final.h.shape == (4, 3, 8)
    assert out.final.c is None and not out.outputs[1, 3:].any()
    _, tag_cfg = resolve_arch("rnn_tagger", {**TINY, "cell": "mgu"})
    tags, _ = RNNTagger.build(tag_cfg, WORDS, TAGS).eval()(TOKENS, LENGTHS)
    assert tags.shape == (3, 5, len(TAGS)) and torch.isfinite(tags).all()
    sizes = ("encoder_embed_dim", "encoder_hidden_size", "decoder_embed_dim", "decoder_hidden_size")
    options = {**dict.fromkeys(sizes, 8), "cell": "mgu", "encoder_bidirectional": True}
    _, s2s_cfg = resolve_arch("attention_seq2seq", options)
    seq2seq = Seq2Seq.build(s2s_cfg, WORDS, WORDS).eval()
    logits = seq2seq(TOKENS, LENGTHS, TOKENS[:, :3])[0]
    assert logits.shape[:2] == (3, 3) and torch.isfinite(logits).all()
    with pytest.raises(RnnkitError, match="no layer-normalized variant"):
        RecurrentStack("mgu", 4, 8, layer_norm=True)
