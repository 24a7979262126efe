"""Criteria: summed, padding ignored, label smoothing as its formula."""

import torch

from rnnkit.training.criteria import CRITERION_REGISTRY


def test_cross_entropy_is_summed_and_ignores_padding():
    logits, targets = torch.randn(5, 7), torch.tensor([1, 2, 3, 1, 0])
    loss = CRITERION_REGISTRY.get("cross_entropy")(ignore_index=1)(logits, targets)
    keep = targets != 1
    expected = -torch.log_softmax(logits, -1)[keep, targets[keep]].sum()
    torch.testing.assert_close(loss, expected)


def test_label_smoothing_matches_its_formula():
    torch.manual_seed(0)
    logits, targets, eps = torch.randn(4, 6), torch.tensor([0, 5, 2, 2]), 0.2
    loss = CRITERION_REGISTRY.get("label_smoothed_cross_entropy")(label_smoothing=eps)(
        logits, targets
    )
    lp = torch.log_softmax(logits, -1)
    nll = -lp.gather(1, targets[:, None]).squeeze(1)
    expected = ((1 - eps) * nll - eps * lp.mean(-1)).sum()
    torch.testing.assert_close(loss, expected)
