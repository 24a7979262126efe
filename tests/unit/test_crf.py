"""The linear-chain CRF (rnnkit.modules.crf) against brute-force enumeration of tag sequences."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from rnnkit.dictionary import Dictionary
from rnnkit.modules.crf import CRF, FORBIDDEN, bio_constraints

TAGS = ["O", "B-a", "I-a", "B-b", "I-b"]


def random_crf(k: int, seed: int = 0, **kwargs) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(k, **kwargs).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def allowed_path(y: tuple[int, ...], tags: list[str], allowed: list[bool]) -> bool:
    """BIO and the allowed tags, checked independently of the CRF's penalty buffers."""
    names = [tags[i] for i in y]
    bio = all(
        not n.startswith("I-") or (i > 0 and names[i - 1][2:] == n[2:]) for i, n in enumerate(names)
    )
    return bio and all(allowed[i] for i in y)


def path_score(crf: CRF, e: torch.Tensor, y: tuple[int, ...]) -> torch.Tensor:
    """score(y) of one sentence e (n, K) from the raw parameters, term by term."""
    s = crf.start[y[0]] + crf.end[y[-1]] + sum(e[t, y[t]] for t in range(len(y)))
    return s + sum(crf.transitions[y[t - 1], y[t]] for t in range(1, len(y)))


def brute_force(
    crf: CRF, e: torch.Tensor, tags: list[str] | None = None, allowed: list[bool] | None = None
) -> tuple[torch.Tensor, tuple]:
    """log Z and the arg-max sequence over all K^n sequences of one sentence e (n, K); with
    ``tags`` only over those that keep BIO and use ``allowed`` tags (a forbidden sequence adds
    exp(-1e4), which is 0 in float64)."""
    k = e.size(1)
    seqs = list(itertools.product(range(k), repeat=e.size(0)))
    if tags is not None:
        seqs = [y for y in seqs if allowed_path(y, tags, allowed or [True] * k)]
    scores = torch.stack([path_score(crf, e, y) for y in seqs])
    return torch.logsumexp(scores, 0), seqs[int(scores.argmax())]


def test_forward_algorithm_matches_brute_force() -> None:
    crf = random_crf(3)
    torch.manual_seed(1)
    e = torch.randn(3, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([4, 2, 3])
    tags = torch.randint(0, 3, (3, 4))
    log_z, nll = crf.log_partition(e, lengths), crf(e, tags, lengths)
    for b, n in enumerate(lengths.tolist()):
        ref_z, _ = brute_force(crf, e[b, :n])
        gold = tuple(tags[b, :n].tolist())
        assert abs(log_z[b].item() - ref_z.item()) < 1e-6
        ref_nll = ref_z - path_score(crf, e[b, :n], gold)
        assert abs(nll[b].item() - ref_nll.item()) < 1e-6


def test_constrained_training_matches_brute_force() -> None:
    start_ok, trans_ok = bio_constraints(TAGS)
    crf = random_crf(5, start_ok=start_ok, trans_ok=trans_ok, constrain_training=True)
    torch.manual_seed(2)
    e = torch.randn(2, 3, 5, dtype=torch.float64)
    lengths, tags = torch.tensor([3, 2]), torch.tensor([[1, 2, 0], [3, 4, 0]])
    nll = crf(e, tags, lengths)
    for b, n in enumerate(lengths.tolist()):
        ref_z, _ = brute_force(crf, e[b, :n], TAGS)
        ref = ref_z - path_score(crf, e[b, :n], tuple(tags[b, :n].tolist()))
        assert abs(nll[b].item() - ref.item()) < 1e-6
    # a gold sequence that breaks BIO costs about one FORBIDDEN, and stays finite
    bad = crf(e[:1], torch.tensor([[0, 2, 0]]), torch.tensor([3]))
    assert torch.isfinite(bad).all() and bad.item() > -FORBIDDEN / 2


def test_a_gold_tag_decoding_may_not_output_costs_no_penalty() -> None:
    """An unseen tag in validation (``<unk>``) is scored like any tag; decoding avoids it."""
    start_ok, trans_ok = bio_constraints(TAGS)
    allowed = torch.tensor([True, True, True, True, False])
    crf = random_crf(5, seed=13, allowed=allowed, start_ok=start_ok, trans_ok=trans_ok,
                     constrain_training=True)  # fmt: skip
    e, lengths = torch.randn(1, 3, 5, dtype=torch.float64), torch.tensor([3])
    nll = crf(e, torch.tensor([[0, 3, 4]]), lengths)  # O B-b I-b, I-b not allowed
    ref_z, _ = brute_force(crf, e[0], TAGS)  # all BIO-valid sequences, I-b included
    assert abs(nll.item() - (ref_z - path_score(crf, e[0], (0, 3, 4))).item()) < 1e-6
    assert 4 not in crf.decode(e, lengths).tags[0].tolist()


@pytest.mark.parametrize("bio", [False, True])
def test_viterbi_matches_brute_force_argmax(bio: bool) -> None:
    start_ok, trans_ok = bio_constraints(TAGS) if bio else (None, None)
    allowed = [True, True, True, True, False]  # I-b may never be predicted
    crf = random_crf(5, seed=3, allowed=torch.tensor(allowed), start_ok=start_ok,
                     trans_ok=trans_ok)  # fmt: skip
    torch.manual_seed(4)
    e = torch.randn(4, 4, 5, dtype=torch.float64)
    e[:, :, 2] += 2.0  # tempt the unconstrained path towards I-a everywhere
    lengths = torch.tensor([4, 1, 3, 2])
    out = crf.decode(e, lengths)
    rules = TAGS if bio else ["O"] * 5  # no I- tags: only the allowed vector
    for b, n in enumerate(lengths.tolist()):
        _, best = brute_force(crf, e[b, :n], rules, allowed)
        assert tuple(out.tags[b, :n].tolist()) == best
        assert (out.tags[b, n:] == crf.pad_index).all()
        assert abs(out.score[b].item() - path_score(crf, e[b, :n], best).item()) < 1e-9


def test_padding_does_not_change_a_sentence() -> None:
    crf = random_crf(4, seed=5)
    torch.manual_seed(6)
    e = torch.randn(1, 3, 4, dtype=torch.float64)
    tags = torch.tensor([[1, 0, 3]])
    alone_nll, alone = crf(e, tags, torch.tensor([3])), crf.decode(e, torch.tensor([3]))
    other = torch.randn(1, 6, 4, dtype=torch.float64)
    padded = torch.cat([torch.cat([e, 1e3 * torch.randn(1, 3, 4).double()], 1), other])
    ptags = torch.cat([torch.cat([tags, torch.tensor([[-100, 7, 2]])], 1), tags.new_zeros(1, 6)])
    lengths = torch.tensor([3, 6])
    nll, path = crf(padded, ptags, lengths), crf.decode(padded, lengths)
    assert abs(nll[0].item() - alone_nll.item()) < 1e-9
    assert path.tags[0, :3].tolist() == alone.tags[0].tolist()
    assert abs(path.score[0].item() - alone.score.item()) < 1e-9


def test_empty_sentence_has_zero_loss_and_no_tags() -> None:
    crf = random_crf(3, pad_index=1)
    e = torch.randn(2, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([0, 2])
    assert crf(e, torch.zeros(2, 2, dtype=torch.long), lengths)[0].item() == 0.0
    assert crf.decode(e, lengths).tags[0].tolist() == [1, 1]


def test_gradients_by_gradcheck() -> None:
    start_ok, trans_ok = bio_constraints(["O", "B-a", "I-a"])
    crf = random_crf(3, seed=7, start_ok=start_ok, trans_ok=trans_ok, constrain_training=True)
    torch.manual_seed(8)
    e = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    tags, lengths = torch.tensor([[1, 2, 0], [0, 1, 0]]), torch.tensor([3, 2])

    names = ["transitions", "start", "end"]
    # gradients with respect to the emissions and the CRF's own parameters
    params = [crf.get_parameter(n).detach().clone().requires_grad_() for n in names]

    def functional(e, trans, start, end):
        weights = {"transitions": trans, "start": start, "end": end}
        return torch.func.functional_call(crf, weights, (e, tags, lengths))

    assert torch.autograd.gradcheck(functional, (e, *params))


def test_zero_transitions_equal_token_cross_entropy() -> None:
    crf = CRF(4).double()  # fresh: all scores zero, no constraints
    torch.manual_seed(9)
    e = torch.randn(2, 5, 4, dtype=torch.float64)
    tags, lengths = torch.randint(0, 4, (2, 5)), torch.tensor([5, 3])
    ce = [F.cross_entropy(e[b, :n], tags[b, :n], reduction="sum") for b, n in enumerate([5, 3])]
    assert torch.allclose(crf(e, tags, lengths), torch.stack(ce))
    assert crf.decode(e, lengths).tags[0].tolist() == e[0].argmax(-1).tolist()


def test_from_dictionary_masks_specials_and_keeps_state_dict_small() -> None:
    tags = Dictionary()
    for t in ["O", "B-a", "I-a"]:
        tags.add_symbol(t)
    tags.finalize(padding_factor=8)  # adds madeupword padding
    crf = CRF.from_dictionary(tags)
    assert set(crf.state_dict()) == {"transitions", "start", "end"}
    e = torch.zeros(1, 3, len(tags))
    e[0, :, :4] = 50.0  # specials score highest, I-a next
    e[0, :, tags.index("I-a")] = 10.0
    e[0, :, 7:] = 60.0  # madeupwords
    out = crf.decode(e, torch.tensor([3])).tags[0].tolist()
    # I-a may not start, so B-a then I-a I-a
    assert [tags[i] for i in out] == ["B-a", "I-a", "I-a"]
    assert crf.pad_index == tags.pad_index


def test_half_precision_emissions_are_summed_in_fp32_without_autocast() -> None:
    crf = random_crf(3, seed=10).float()
    e = torch.randn(2, 4, 3)
    tags, lengths = torch.randint(0, 3, (2, 4)), torch.tensor([4, 2])
    nll = crf(e.bfloat16(), tags, lengths)
    assert nll.dtype == torch.float32
    assert torch.allclose(nll, crf(e.bfloat16().float(), tags, lengths))
    ref = crf(e, tags, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in `train --amp bf16`
        nll = crf(e, tags, lengths)
    assert nll.dtype == torch.float32 and torch.allclose(nll, ref, rtol=1e-6)


def test_forward_is_exact_in_fp32_with_large_scores_and_constraints() -> None:
    """The matrix-product recursion against a plain logsumexp over (B, K, K), with emissions
    of a sharply trained model (scale 20) and BIO penalties."""
    start_ok, trans_ok = bio_constraints(TAGS)
    crf = random_crf(5, seed=11, start_ok=start_ok, trans_ok=trans_ok, constrain_training=True)
    crf = crf.float()
    torch.manual_seed(12)
    e, lengths = 20 * torch.randn(3, 7, 5), torch.tensor([7, 4, 1])
    start, trans, end = (s.double() for s in crf.scores(torch.float32, bio=True, tags=False))
    alpha = start + e[:, 0].double()
    for t in range(1, 7):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + e[:, t].double()
        alpha = torch.where((t < lengths)[:, None], nxt, alpha)
    ref = torch.logsumexp(alpha + end, dim=1)
    assert torch.allclose(crf.log_partition(e, lengths).double(), ref, rtol=1e-6, atol=1e-4)


def test_transitions_are_learned_from_gold_sequences() -> None:
    """With uninformative emissions, only the learned start/transition/end scores can tell
    decoding that B-a is followed by I-a (no BIO rules given)."""
    crf = CRF(3)
    e, lengths = torch.zeros(4, 3, 3), torch.tensor([3, 3, 3, 3])
    gold = torch.tensor([[1, 2, 0], [1, 2, 0], [1, 2, 0], [0, 1, 2]])  # O B-a I-a
    first = crf(e, gold, lengths).sum().item()
    for _ in range(30):  # plain gradient descent (torch.optim's first step is slow to import)
        crf.zero_grad()
        crf(e, gold, lengths).sum().backward()
        with torch.no_grad():
            for p in crf.parameters():
                p -= 0.5 * p.grad
    assert crf(e, gold, lengths).sum().item() < first / 2
    assert crf.decode(e[:1], torch.tensor([3])).tags[0].tolist() == [1, 2, 0]
