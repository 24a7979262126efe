"""Attention: every score against a naive formula, padding, and Luong's local windows."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rnnkit.errors import RnnkitError
from rnnkit.modules.attention import ATTENTION, Attention, AttentionalHidden

SCORES = ["bahdanau", "concat", "dot", "general"]
B, S, H, D = 3, 7, 6, 2
LENGTHS = [7, 4, 1]  # one full sentence, one padded, one of a single token


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query (B, H), keys (B, S, H), mask (B, S) with the LENGTHS above."""
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B, H, generator=g)
    keys = torch.randn(B, S, H, generator=g)
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)
    return query, keys, mask


def _attention(score: str = "general", mode: str = "global") -> Attention:
    torch.manual_seed(0)
    return Attention(score, H, H, mode=mode, window=D)


def _naive_scores(att: Attention, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The scores as printed in the papers, without any precomputation: (B, S)."""
    sc = att.score
    if att.score_name == "dot":
        return torch.einsum("bh,bsh->bs", query, keys)
    if att.score_name == "general":
        return torch.einsum("bq,qk,bsk->bs", query, sc.w_a.weight, keys)
    # concat/bahdanau: v_aᵀ tanh(W_a[h_t; h̄_s]) with W_a = [W_q | W_k]
    w_a = torch.cat([sc.w_q.weight, sc.w_k.weight], dim=1)  # (A, Q + K)
    pairs = torch.cat([query.unsqueeze(1).expand(-1, keys.size(1), -1), keys], dim=-1)
    return torch.tanh(pairs @ w_a.T + sc.w_q.bias) @ sc.v_a.weight.squeeze(0)


def test_registry_names_every_score() -> None:
    assert ATTENTION.names() == SCORES
    with pytest.raises(RnnkitError, match="did you mean 'general'"):
        Attention("genral", H, H)
    with pytest.raises(RnnkitError, match="unknown attention mode"):
        Attention("dot", H, H, mode="local")


@pytest.mark.parametrize("score", SCORES)
def test_global_weights_sum_to_one_and_skip_padding(score: str) -> None:
    query, keys, mask = _inputs()
    att = _attention(score)
    context, weights = att(query, att.prepare(keys, mask))
    assert context.shape == (B, H) and weights.shape == (B, S)
    assert_close(weights.sum(-1), torch.ones(B))
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    assert_close(context, torch.einsum("bs,bsh->bh", weights, keys))


@pytest.mark.parametrize("score", SCORES)
def test_prepared_keys_match_naive_computation(score: str) -> None:
    query, keys, mask = _inputs(1)
    att = _attention(score)
    _, weights = att(query, att.prepare(keys, mask))
    scores = _naive_scores(att, query, keys)
    for b, n in enumerate(LENGTHS):  # a softmax per sentence over its real tokens only
        assert_close(weights[b, :n], torch.softmax(scores[b, :n], dim=0))


def test_dot_needs_equal_sizes() -> None:
    with pytest.raises(RnnkitError, match="equal query and key sizes"):
        Attention("dot", H, H + 1)
    Attention("general", H, H + 1)  # general projects between the sizes


@pytest.mark.parametrize("mode", ["global", "local-m", "local-p"])
def test_all_padding_row_gives_zeros_not_nan(mode: str) -> None:
    query, keys, _ = _inputs()
    mask = torch.zeros(B, S, dtype=torch.bool)
    mask[0, :3] = True
    att = _attention("concat", mode)
    keys.requires_grad_(True)
    context, weights = att(query, att.prepare(keys, mask), step=0)
    context.sum().backward()
    assert (weights[1:] == 0).all() and (context[1:] == 0).all()
    assert torch.isfinite(keys.grad).all()


def test_local_m_window_around_step() -> None:
    query, keys, mask = _inputs()
    att = _attention("general", "local-m")
    prepared = att.prepare(keys, mask)
    src = torch.arange(S)
    for t in range(S + 2):  # past the end the window stays at each sentence's last token
        _, weights = att(query, prepared, step=t)
        p_t = torch.tensor([min(t, n - 1) for n in LENGTHS]).unsqueeze(1)  # (B, 1)
        inside = mask & ((src - p_t).abs() <= D)
        assert (weights[~inside] == 0).all() and (weights[inside] > 0).all()
        assert_close(weights.sum(-1), torch.ones(B))
    with pytest.raises(RnnkitError, match="needs the decoder step"):
        att(query, prepared)


def test_local_p_position_window_and_formula() -> None:
    query, keys, mask = _inputs(2)
    att = _attention("general", "local-p")
    prepared = att.prepare(keys, mask)
    _, weights = att(query, prepared)
    p_t = att.aligned_position(query, prepared)  # (B,)
    lengths = torch.tensor(LENGTHS, dtype=torch.float)
    assert ((p_t >= 0) & (p_t <= lengths)).all()
    inside = mask & ((torch.arange(S) - p_t.unsqueeze(1)).abs() <= D)
    assert (weights[~inside] == 0).all() and (weights[inside] > 0).all()
    # Luong does not renormalize after the Gaussian: the weights sum to at most 1.
    assert (weights.sum(-1) <= 1).all()

    # Sentence 0 by hand: p_t = S·sigmoid(v_pᵀ tanh(W_p h_t)), softmax over the window × Gaussian.
    h = query[0]
    p = LENGTHS[0] * torch.sigmoid(att.v_p.weight[0] @ torch.tanh(att.w_p.weight @ h))
    positions = [s for s in range(LENGTHS[0]) if abs(s - p) <= D]
    scores = torch.stack([h @ att.score.w_a.weight @ keys[0, s] for s in positions])
    sigma = D / 2
    gauss = torch.stack([torch.exp(-((s - p) ** 2) / (2 * sigma**2)) for s in positions])
    expected = torch.zeros(S)
    expected[positions] = torch.softmax(scores, dim=0) * gauss
    assert_close(weights[0], expected)


def test_local_p_gradients_reach_position_predictor() -> None:
    query, keys, mask = _inputs()
    att = _attention("dot", "local-p")
    context, _ = att(query, att.prepare(keys, mask))
    context.pow(2).sum().backward()
    for param in (att.w_p.weight, att.v_p.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["global", "local-m", "local-p"])
def test_rows_are_independent(mode: str) -> None:
    query, keys, mask = _inputs()
    att = _attention("bahdanau", mode)
    prepared = att.prepare(keys, mask)
    context, weights = att(query, prepared, step=3)
    changed = query.clone()
    changed[1] += 5.0  # row 1 is the padded sentence
    context2, weights2 = att(changed, prepared, step=3)
    keep = torch.tensor([0, 2])
    assert_close(context2[keep], context[keep])
    assert_close(weights2[keep], weights[keep])
    assert not torch.allclose(weights2[1], weights[1])


def test_reorder_selects_sentences() -> None:
    query, keys, mask = _inputs()
    att = _attention("concat")
    prepared = att.prepare(keys, mask)
    order = torch.tensor([2, 0, 0])
    context, weights = att(query[order], prepared.reorder(order))
    expected_context, expected_weights = att(query, prepared)
    assert_close(context, expected_context[order])
    assert_close(weights, expected_weights[order])


@pytest.mark.parametrize("mode", ["global", "local-m", "local-p"])
@pytest.mark.parametrize("score", ["concat", "general"])
def test_beam_reorders_keep_one_copy_per_sentence(score: str, mode: str) -> None:
    """Beam search's reorders (repeat, follow beams, drop a sentence, anything else) give the
    attention of the selected rows, while the keys stay one row per sentence when they can."""
    _, keys, mask = _inputs()
    att = _attention(score, mode)
    prepared, sentence = att.prepare(keys, mask), torch.arange(B)  # row -> original sentence
    orders = [
        (torch.arange(B).repeat_interleave(4), 3, 4),  # beams of 4: no copy
        (torch.tensor([1, 0, 0, 3, 5, 4, 6, 7, 8, 8, 9, 11]), 3, 4),  # follow beams
        (torch.tensor([0, 0, 1, 2, 9, 10, 8, 8]), 2, 4),  # sentence 1 leaves: copy the others
        (torch.tensor([5, 0, 6, 6, 1]), 2, None),  # not in groups: gathered per row
        (torch.tensor([4, 1]), 1, 2),  # back in a group
    ]
    for order, sentences, group in orders:
        sentence, prepared = sentence[order], prepared.reorder(order)
        assert prepared.keys.size(0) == sentences
        assert (prepared.rows is None) == (group is not None)
        assert group is None or prepared.group == group
        query = torch.randn(order.numel(), H)
        context, weights = att(query, prepared, step=2)
        naive = att.prepare(keys[sentence], mask[sentence])
        expected_context, expected_weights = att(query, naive, step=2)
        assert_close(context, expected_context)
        assert_close(weights, expected_weights)
        if mode == "local-p":
            assert_close(att.aligned_position(query, prepared), att.aligned_position(query, naive))


def test_no_rows_and_long_sources_under_bf16() -> None:
    att = Attention("general", H, H, mode="local-m", window=2)
    keys, mask = torch.randn(1, 300, H), torch.ones(1, 300, dtype=torch.bool)
    empty = att.prepare(keys, mask).reorder(torch.tensor([], dtype=torch.long))
    context, weights = att(torch.randn(0, H), empty, step=0)
    assert context.shape == (0, H) and weights.shape == (0, 300)
    # bf16 holds integers exactly only up to 256: positions are computed in float32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, weights = att(torch.randn(1, H), att.prepare(keys, mask), step=281)
    assert (weights[0] > 0).nonzero().flatten().tolist() == [279, 280, 281, 282, 283]


def test_attentional_hidden_formula() -> None:
    torch.manual_seed(0)
    hidden, context = torch.randn(B, H), torch.randn(B, H + 2)
    layer = AttentionalHidden(H, H + 2, 5)
    out = layer(hidden, context)
    assert out.shape == (B, 5)
    w_c = layer.w_c.weight  # (5, K + H): [c_t; h_t] order
    assert_close(out, torch.tanh(torch.cat([context, hidden], dim=-1) @ w_c.T))
    assert_close(out, torch.tanh(context @ w_c[:, : H + 2].T + hidden @ w_c[:, H + 2 :].T))
