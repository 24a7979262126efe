"""The lm task reads its streams from the memory map, a window at a time: the same windows,
the same parameters and the same resume as the whole split loaded into memory (the reference
below is what rnnkit did before: the split as one int64 tensor cut into B rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import make_run, params

from rnnkit.data import binarized
from rnnkit.data.binarized import DatasetWriter, IndexedDataset, write_index
from rnnkit.data.streams import TokenRows
from rnnkit.tasks.lm import IN_RAM_ENV, LanguageModelingTask
from rnnkit.training.loop import fit


def reference_rows(task: LanguageModelingTask, split: str, batch: int) -> torch.Tensor:
    """The whole split in memory as int64, cut into ``batch`` contiguous rows: (B, N // B)."""
    stream = torch.from_numpy(np.array(task.dataset(split).stream(), dtype=np.int64))
    n = stream.numel() // batch
    return stream[: n * batch].view(batch, n)


def in_memory(monkeypatch) -> None:
    """Make the lm task read every split through :func:`reference_rows`."""
    rows = lambda task, split, batch: TokenRows(reference_rows(task, split, batch))  # noqa: E731
    monkeypatch.setattr(LanguageModelingTask, "rows", rows)


def test_windows_are_the_reference_rows_of_each_worker(tmp_path):
    run = make_run(tmp_path, batch_size=4, bptt=5, random_bptt=True)
    ref = reference_rows(run.task, "train", 4)
    for shard, block in (((0, 1), ref), ((0, 2), ref[:2]), ((1, 2), ref[2:])):
        g = torch.Generator().manual_seed(7)
        itr = run.task.train_iterator(run.cfg, run.model, run.device, g, shard=shard)
        assert isinstance(itr.rows.data, np.memmap)  # a view of the file, nothing loaded
        position, lengths = 0, set()
        for w in itr:
            length = w.inputs.size(1)
            assert w.inputs.dtype == w.targets.dtype == torch.int64
            assert torch.equal(w.inputs, block[:, position : position + length])
            assert torch.equal(w.targets, block[:, position + 1 : position + 1 + length])
            position, lengths = position + length, lengths | {length}
        assert position == block.size(1) - 1 and len(lengths) > 1  # random lengths, all read


def _updates(tmp_path, save: str, **kw) -> dict[str, torch.Tensor]:
    run = make_run(tmp_path, save=save, model={"dropout": 0.3}, random_bptt=True, **kw)
    fit(run)
    return params(run)


@pytest.mark.parametrize("random_bptt", [False, True])
@pytest.mark.slow
def test_parameters_equal_the_in_memory_reference_bitwise(tmp_path, monkeypatch, random_bptt):
    kw = dict(model={"dropout": 0.3}, random_bptt=random_bptt, max_update=6)
    mapped = make_run(tmp_path, save="mapped", **kw)
    fit(mapped)
    valid = mapped.task.evaluate(mapped.model, "valid", mapped.cfg, mapped.device)
    in_memory(monkeypatch)
    ref = make_run(tmp_path, save="ref", **kw)
    fit(ref)
    assert ref.task.evaluate(ref.model, "valid", ref.cfg, ref.device) == valid
    for k, v in params(ref).items():
        assert torch.equal(v, params(mapped)[k]), k


@pytest.mark.slow
def test_mid_epoch_resume_equals_the_uninterrupted_reference(tmp_path, monkeypatch):
    _updates(tmp_path, "mapped", max_update=4)  # stops mid-epoch 1 (about 12 windows an epoch)
    resumed = _updates(tmp_path, "mapped", max_update=18)  # on into epoch 2
    in_memory(monkeypatch)
    straight = _updates(tmp_path, "ref", max_update=18)
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_the_benchmark_switch_loads_the_split_into_memory(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    assert isinstance(run.task.rows("train", 4).data, np.memmap)
    monkeypatch.setenv(IN_RAM_ENV, "1")
    rows = run.task.rows("train", 4).data
    assert isinstance(rows, torch.Tensor) and torch.equal(
        rows, reference_rows(run.task, "train", 4)
    )


def test_the_index_is_scanned_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(binarized, "SCAN_BLOCK", 2)
    seqs = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10], [11]]
    w = DatasetWriter(tmp_path / "a.bin", np.uint16)
    for s in seqs:
        w.add(s)
    w.finalize(tmp_path / "a.idx")
    ds = IndexedDataset(tmp_path / "a")
    assert ds.num_tokens == 11 and isinstance(ds.stream(), np.memmap)
    assert ds.stream().tolist() == list(range(1, 12))
    # Sequence 1 stored before sequence 0: not back to back, so gathered in index order.
    np.array([4, 1, 2, 3, *range(5, 12)], dtype=np.uint16).tofile(tmp_path / "b.bin")
    write_index(tmp_path / "b.idx", np.dtype(np.uint16), [len(s) for s in seqs])
    with open(tmp_path / "b.idx", "r+b") as f:
        f.seek(26 + 4 * len(seqs))  # the pointers, after the header and the sizes
        f.write(np.array([2, 0], dtype="<i8").tobytes())  # bytes: sequence 0 at 1, 1 at 0
    ds = IndexedDataset(tmp_path / "b")
    assert ds.num_tokens == 11 and ds.stream().tolist() == list(range(1, 12))
