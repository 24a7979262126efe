"""Issue 16.2's training speed levers keep the math: loss curves recorded before them, and the
hoisted/stepped decoder path against the kernel path it replaces.

The recorded curves are the per-token losses of 20 updates of tiny models (same seeds, same
batches) taken on the code before the levers (commit a35a4e9): the decoder's first-layer input
projection hoisted out of the step loop and stepped through torch's cells
(:meth:`RecurrentStack.cell_step`), and the output layer and loss on non-padding positions only.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from rnnkit.config import resolve
from rnnkit.modules.recurrent import RecurrentStack
from rnnkit.tasks import load_task
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, train_step
from tests.unit.test_training import make_char_data
from tests.unit.test_translation_task import TINY, make_pairs

LABEL_SMOOTHING = {"criterion": "label_smoothed_cross_entropy", "label_smoothing": 0.1}
GRU_BAHDANAU = {"attention": "bahdanau", "input_feeding": False, "cell": "gru"}
# name: (model options, training options, the losses of updates 1-20 before issue 16.2)
SEQ2SEQ = {
    "luong_feed": ({"decoder_layers": 2, "encoder_layers": 2}, {}, [
        2.78229916, 2.77302633, 2.75365591, 2.73271628, 2.73031168, 2.72724166, 2.69615173,
        2.65193624, 2.62422082, 2.58504105, 2.51119637, 2.45379706, 2.37052602, 2.28112361,
        2.25430775, 2.12240849, 2.11498654, 2.10129179, 2.0869391, 1.99587025]),
    "luong_feed_ls": ({"decoder_layers": 2}, LABEL_SMOOTHING, [
        2.79985046, 2.79069356, 2.7776444, 2.76063336, 2.74433468, 2.71904654, 2.69451189,
        2.67009005, 2.61496341, 2.56143515, 2.48599958, 2.44067944, 2.35127607, 2.27775315,
        2.26466084, 2.22527247, 2.22309826, 2.20595809, 2.20276093, 2.15579089]),
    "bahdanau": (GRU_BAHDANAU, {}, [
        2.77138372, 2.76441656, 2.75218534, 2.72152261, 2.7112508, 2.64408097, 2.63103747,
        2.61102444, 2.51861621, 2.47215652, 2.39951015, 2.3210898, 2.27140178, 2.18256623,
        2.13349986, 2.0905644, 2.07905086, 2.06799494, 2.04542685, 1.98990766]),
    "copy": ({"copy": True}, {}, [
        2.03804558, 1.89808723, 1.97223508, 1.6791816, 1.83277694, 1.75997579, 1.1806221,
        1.2863476, 1.94530241, 1.78946699, 1.85094953, 1.53105029, 1.66331963, 1.55693256,
        0.977299929, 1.04286484, 1.71515249, 1.54737854, 1.63484967, 1.28827712]),
}  # fmt: skip
LM_SMOOTHED = [
    2.10351642, 2.08579477, 2.07379166, 2.06262032, 2.06048648, 2.04390844, 2.02371248,
    2.00228182, 1.97618882, 1.98805634, 1.87212785, 1.85183938, 1.90228224, 1.78615808,
    1.62646357, 1.83966049, 1.63677931, 1.51143583, 1.84358581, 1.66501617,
]  # fmt: skip


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_pairs(tmp_path_factory.mktemp("pairs"))


def seq2seq_run(data: Path, save: Path, model: dict, train: dict):
    cfg = resolve(TrainConfig, {"batch_size": 8, "optimizer": "adam", "lr": 0.01, "seed": 2,
                                "log_interval": 1e9, **train})  # fmt: skip
    return build_run(cfg, load_task(data), "attention_seq2seq", [{**TINY, **model}], save)


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_seq2seq_loss_curve_is_the_recorded_one(pairs, tmp_path, name):
    model, train, expected = SEQ2SEQ[name]
    run = seq2seq_run(pairs, tmp_path / name, model, train)
    batches = list(run.task.batches("train", run.cfg, seed=1))
    losses = []
    for ids in itertools.islice(itertools.cycle(batches), len(expected)):
        loss, n = train_step(run, run.task.collate("train", ids.tolist()), None)
        losses.append(loss / n)
    assert losses == pytest.approx(expected, rel=1e-5)


def test_lm_loss_curve_is_the_recorded_one(tmp_path):
    make_char_data(tmp_path / "data")
    cfg = resolve(TrainConfig, {"batch_size": 4, "bptt": 6, "optimizer": "adam", "lr": 0.01,
                                "seed": 3, "log_interval": 1e9, **LABEL_SMOOTHING})  # fmt: skip
    model = {"embed-dim": 8, "hidden-size": 8, "num-layers": 2}
    run = build_run(cfg, load_task(tmp_path / "data"), "rnn_lm", [model], tmp_path / "run")
    itr = run.task.iterator("train", 4, 6)
    losses = []
    for window in itertools.islice(itertools.cycle(list(itr)), len(LM_SMOOTHED)):
        loss, n = train_step(run, window, itr)
        losses.append(loss / n)
    assert losses == pytest.approx(LM_SMOOTHED, rel=1e-5)


def loss_and_grads(run, batch, cells: bool, monkeypatch) -> tuple[float, list[torch.Tensor]]:
    with monkeypatch.context() as m:
        if not cells:
            m.setattr(RecurrentStack, "steps_by_cells", lambda self, x: False)
        run.model.zero_grad()
        torch.manual_seed(7)  # the same dropout draws on both paths
        loss, _, _ = run.task.loss(run.model, batch)
        loss.backward()
    return loss.item(), [p.grad.clone() for p in run.model.parameters()]


@pytest.mark.parametrize("model", [{"dropout": 0.3}, {**GRU_BAHDANAU, "dropout": 0.3}])
def test_stepped_cells_equal_the_kernel_with_dropout(pairs, tmp_path, model, monkeypatch):
    """Dropout between two decoder layers draws the same masks on the cell path as in the
    kernel, so the loss and every gradient agree."""
    run = seq2seq_run(pairs, tmp_path / "run", {**model, "decoder_layers": 2}, {})
    run.model.train()
    ids = next(iter(run.task.batches("train", run.cfg, seed=1)))
    batch = run.task.collate("train", ids.tolist())
    assert run.model.decoder.rnn.steps_by_cells(torch.zeros(1, 2, 1))
    loss, grads = loss_and_grads(run, batch, True, monkeypatch)
    ref_loss, ref_grads = loss_and_grads(run, batch, False, monkeypatch)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-7)


def test_kept_positions_are_the_full_logits_rows(pairs, tmp_path):
    run = seq2seq_run(pairs, tmp_path / "run", {}, {})
    run.model.eval()
    ids = next(iter(run.task.batches("train", run.cfg, seed=1)))
    b = run.task.collate("train", ids.tolist())
    keep = b.target != run.task.tgt_dict.pad_index
    assert not keep.all()  # the batch has padding to skip
    with torch.no_grad():
        full, _ = run.model(b.src_tokens, b.src_lengths, b.prev_output_tokens)
        kept, _ = run.model(b.src_tokens, b.src_lengths, b.prev_output_tokens, keep=keep)
    torch.testing.assert_close(kept, full[keep])
