"""Resume under another world size for the batch-list tasks (translation, tagging): the workers of
the resumed run deal out the global order from the saved position on, so the batches trained
before and after the resume are exactly a prefix of one epoch's order, whatever the old and new
world sizes (only the epoch's last ``len(rest) % world`` batches are left out).

The workers are simulated in this process: ``shard=(rank, world)`` iterators stepped together,
with ``collate`` replaced by the batch's example ids.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.config import resolve
from rnnkit.data.buckets import BatchIterator
from rnnkit.tasks import load_task
from rnnkit.training.config import TrainConfig
from tests.unit import test_tagging, test_translation_task


def _workers(task, cfg, world: int, resume=None) -> list[BatchIterator]:
    itrs = []
    for rank in range(world):
        g = torch.Generator().manual_seed(5)  # the shared data generator, alike on every worker
        itr = task.train_iterator(cfg, None, None, g, resume, shard=(rank, world))
        itr.collate = tuple  # the batch's example ids
        itrs.append(itr)
    return itrs


def _train(itrs: list[BatchIterator], steps: int | None = None) -> list[tuple[int, ...]]:
    """Step every worker ``steps`` times (default: to the epoch's end), in global order."""
    its = [iter(i) for i in itrs]
    steps = len(itrs[0]) - itrs[0].batches_done if steps is None else steps
    return [next(it) for _ in range(steps) for it in its]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict[str, tuple]:
    root = tmp_path_factory.mktemp("world")
    (root / "mt").mkdir()
    mt = load_task(test_translation_task.make_pairs(root / "mt", n=90))
    tag = load_task(test_tagging.make_data(root / "tag"))
    return {
        "translation": (mt, resolve(TrainConfig, {"batch_size": 8})),
        "tagging": (tag, test_tagging.train_cfg()),
    }


@pytest.mark.parametrize("name", ["translation", "tagging"])
@pytest.mark.parametrize(("old", "steps", "new"), [(2, 2, 1), (1, 3, 2), (2, 2, 3), (3, 1, 2)])
def test_a_resume_under_another_world_size_continues_the_global_order(tasks, name, old, steps,
                                                                      new):  # fmt: skip
    task, cfg = tasks[name]
    (whole,) = _workers(task, cfg, 1)
    order = _train([whole])  # the epoch's global order
    first = _workers(task, cfg, old)
    before = _train(first, steps)
    state = first[0].state_dict()
    assert state["position"] == old * steps  # global batches done
    second = _workers(task, cfg, new, resume=state)
    assert len({len(i) for i in second}) == 1 and second[0].batches_done == old * steps // new
    after = _train(second)
    rest = len(order) - old * steps
    assert len(after) == rest // new * new  # only the epoch's last rest % new are left out
    assert before + after == order[: len(before) + len(after)]  # nothing replayed or skipped
    assert second[0].state_dict()["position"] == len(before) + len(after)


def test_an_uninterrupted_epoch_deals_out_batches_as_before(tasks):
    task, cfg = tasks["translation"]
    (whole,) = _workers(task, cfg, 1)
    order = _train([whole])
    two = _workers(task, cfg, 2)
    assert _train(two) == order[: len(order) // 2 * 2]
    assert [i.batches_done for i in two] == [len(order) // 2] * 2


def test_resume_positions_count_global_batches():
    batches = [torch.arange(i, i + 1).numpy() for i in range(7)]
    itr = BatchIterator.for_epoch(lambda seed: batches, tuple, None, {"seed": 1, "position": 3},
                                  (1, 2))  # fmt: skip
    assert len(itr) == 1 + 2 and itr.batches_done == 1  # 3 done before: 1 per worker
    assert list(itr) == [(4,), (6,)]  # rank 1 of 2 over batches 3..6
    assert itr.state_dict() == {"seed": 1, "position": 7}
