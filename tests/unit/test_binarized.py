"""Binarized datasets: write/read round trips and fairseq's MMapIndexedDataset byte layout."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.binarized import (
    DTYPE_CODES,
    MAGIC,
    DatasetWriter,
    IndexedDataset,
    best_dtype,
    data_paths,
    dtype_code,
    write_index,
)
from rnnkit.errors import RnnkitError

DTYPES = [np.uint8, np.uint16, np.int32, np.int64]


def write(prefix, seqs, dtype):
    bin_path, idx_path = data_paths(prefix)
    w = DatasetWriter(bin_path, dtype)
    for s in seqs:
        w.add(s)
    w.finalize(idx_path)
    return bin_path, idx_path


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    seqs=st.lists(st.lists(st.integers(0, 255), max_size=30), max_size=40),
    buffer=st.sampled_from([1, 3, 1 << 20]),
)
def test_round_trip_over_dtypes_sizes_and_spills(tmp_path_factory, dtype, seqs, buffer):
    prefix = tmp_path_factory.mktemp("ds") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DatasetWriter, "SIZE_BUFFER", buffer)  # small buffers exercise the spill file
        write(prefix, seqs, dtype)
    ds = IndexedDataset(prefix)
    assert ds.dtype == np.dtype(dtype)
    assert len(ds) == len(seqs)
    assert [ds[i].tolist() for i in range(len(ds))] == seqs
    assert ds.sizes.tolist() == [len(s) for s in seqs]
    assert ds.num_tokens == sum(map(len, seqs))
    assert ds.stream().tolist() == [t for s in seqs for t in s]
    # the streaming index writer and the array one agree byte for byte
    write_index(str(prefix) + ".ref.idx", np.dtype(dtype), [len(s) for s in seqs])
    ref = (str(prefix) + ".ref.idx", data_paths(prefix)[1])
    assert open(ref[0], "rb").read() == open(ref[1], "rb").read()


def test_fairseq_byte_layout_field_by_field(tmp_path):
    seqs = [[5, 6, 7], [], [65535, 1]]
    bin_path, idx_path = write(tmp_path / "d", seqs, np.uint16)
    raw = idx_path.read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00" == MAGIC
    assert struct.unpack("<Q", raw[9:17]) == (1,)  # version, little-endian u64
    assert raw[17] == 8  # dtype code u8: uint16
    assert struct.unpack("<Q", raw[18:26]) == (3,)  # number of sequences
    assert struct.unpack("<3i", raw[26:38]) == (3, 0, 2)  # sizes int32[N]
    assert struct.unpack("<3q", raw[38:62]) == (0, 6, 6)  # byte pointers int64[N]
    assert len(raw) == 62
    assert bin_path.read_bytes() == struct.pack("<5H", 5, 6, 7, 65535, 1)


def test_dtype_codes_match_fairseq():
    assert {1: np.uint8, 4: np.int32, 5: np.int64, 8: np.uint16}.items() <= DTYPE_CODES.items()
    assert dtype_code(np.uint16) == 8 and dtype_code(np.int32) == 4
    assert best_dtype(65_499) is np.uint16 and best_dtype(65_500) is np.uint32


def test_merge_appends_in_order(tmp_path):
    write(tmp_path / "a", [[1, 2], [3]], np.uint16)
    write(tmp_path / "b", [[], [4, 5, 6]], np.uint16)
    bin_path, idx_path = data_paths(tmp_path / "m")
    w = DatasetWriter(bin_path, np.uint16)
    w.merge_file(tmp_path / "a")
    w.merge_file(tmp_path / "b")
    w.finalize(idx_path)
    write(tmp_path / "ref", [[1, 2], [3], [], [4, 5, 6]], np.uint16)
    for got, ref in zip(data_paths(tmp_path / "m"), data_paths(tmp_path / "ref"), strict=True):
        assert got.read_bytes() == ref.read_bytes()
    with pytest.raises(ValueError, match="cannot merge"):
        DatasetWriter(tmp_path / "x.bin", np.int32).merge_file(tmp_path / "a")


def test_empty_dataset(tmp_path):
    write(tmp_path / "e", [], np.uint16)
    ds = IndexedDataset(tmp_path / "e")
    assert len(ds) == 0 and ds.num_tokens == 0 and ds.stream().size == 0


def test_reader_maps_instead_of_loading(tmp_path):
    write(tmp_path / "d", [[1, 2, 3]] * 1000, np.int32)
    ds = IndexedDataset(tmp_path / "d")
    assert isinstance(ds._bin, np.memmap)
    assert not ds[5].flags.owndata  # a view into the map, not a copy


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda idx, bin_: idx.write_bytes(b"NOTMAGIC!" + idx.read_bytes()[9:]), "bad magic"),
        (lambda idx, bin_: idx.write_bytes(idx.read_bytes()[:-4]), "truncated index"),
        (lambda idx, bin_: bin_.write_bytes(bin_.read_bytes()[:-2]), "truncated data"),
        (lambda idx, bin_: bin_.unlink(), "no such file"),
    ],
)
def test_damaged_files_raise_located_errors(tmp_path, damage, message):
    bin_path, idx_path = write(tmp_path / "d", [[1, 2], [3]], np.uint16)
    damage(idx_path, bin_path)
    with pytest.raises(RnnkitError, match=message):
        IndexedDataset(tmp_path / "d")
