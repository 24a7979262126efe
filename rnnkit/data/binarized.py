"""Memory-mapped binarized datasets, byte-compatible with fairseq's ``MMapIndexedDataset``.

A dataset is two files. ``PREFIX.bin`` is every sequence's token ids back to back. ``PREFIX.idx``
is the index (all integers little-endian)::

    magic      9 bytes   b"MMIDIDX\\x00\\x00"
    version    u64       1
    dtype      u8        code of the .bin element type (see DTYPE_CODES)
    count      u64       number of sequences N
    sizes      int32[N]  length of each sequence in elements
    pointers   int64[N]  byte offset of each sequence in the .bin

Readers map both files with ``np.memmap``; opening reads only the index's header, a sequence is
a zero-copy view, and the token count and the flat stream of a language model come from one
pass over the index in blocks, so no reader's memory grows with the corpus. See
docs/binarized-format.md.
"""

from __future__ import annotations

import array
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.io import WriteError, write_reason, writing

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES: dict[int, type[np.generic]] = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.double,
    8: np.uint16,
    9: np.uint32,
    10: np.uint64,
}
_HEADER = len(MAGIC) + 8 + 1 + 8


def dtype_code(dtype: np.dtype | type) -> int:
    """The format's code for a numpy dtype."""
    dt = np.dtype(dtype)
    for code, t in DTYPE_CODES.items():
        if np.dtype(t) == dt:
            return code
    raise ValueError(f"dtype {dt} has no code in the binarized format")


def best_dtype(vocab_size: int) -> type[np.generic]:
    """The ``.bin`` dtype fairseq writes: uint16 under 65,500 entries, uint32 up to 2³² - 1,
    else int64."""
    if vocab_size < 65500:
        return np.uint16
    return np.uint32 if vocab_size < 4294967295 else np.int64


def data_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """The ``.bin`` and ``.idx`` paths of a dataset prefix."""
    p = os.fspath(prefix)
    return Path(p + ".bin"), Path(p + ".idx")


class DatasetWriter:
    """Append sequences to ``PREFIX.bin``; :meth:`finalize` writes ``PREFIX.idx``.

    Memory stays flat however long the corpus: tokens stream straight to disk, and the sizes
    (4 bytes a sequence) are buffered up to ``SIZE_BUFFER`` entries, then spilled to an anonymous
    temporary file that :meth:`finalize` streams into the index. A failed write (full disk,
    ``ulimit -f``) raises a :class:`~rnnkit.io.WriteError` naming the ``.bin`` or ``.idx``.
    """

    SIZE_BUFFER = 1 << 20

    def __init__(self, bin_path: str | os.PathLike, dtype: type[np.generic] = np.int32) -> None:
        self.bin_path = Path(bin_path)
        self.dtype = np.dtype(dtype)
        with writing(self.bin_path):
            self._file = open(self.bin_path, "wb")
        self._sizes = array.array("i")
        self._spill: IO[bytes] | None = None
        self._count = 0

    def add(self, ids: list[int] | np.ndarray) -> None:
        """Append one sequence of token ids."""
        arr = np.asarray(ids, dtype=self.dtype)
        self._write(self._file, arr.tobytes(order="C"))
        self._add_sizes((arr.size,))

    def _write(self, f: IO[bytes], data: bytes) -> None:
        """Write to the ``.bin`` or the spilled sizes; a failure names the ``.bin``."""
        try:  # not `with writing(...)`: this runs once per sequence
            f.write(data)
        except OSError as e:
            raise WriteError(self.bin_path, write_reason(e)) from None

    def _add_sizes(self, sizes: Iterable[int]) -> None:
        n = len(self._sizes)
        self._sizes.extend(sizes)
        self._count += len(self._sizes) - n
        if len(self._sizes) >= self.SIZE_BUFFER:
            if self._spill is None:
                with writing(self.bin_path):
                    self._spill = tempfile.TemporaryFile(dir=self.bin_path.parent)
            self._write(self._spill, self._sizes.tobytes())
            self._sizes = array.array("i")

    def merge_file(self, other_prefix: str | os.PathLike) -> None:
        """Append another dataset of the same dtype (used to join worker chunks in order)."""
        other = IndexedDataset(other_prefix)
        if other.dtype != self.dtype:
            raise ValueError(f"cannot merge {other.dtype} into {self.dtype}")
        for i in range(0, len(other.sizes), self.SIZE_BUFFER):
            self._add_sizes(other.sizes[i : i + self.SIZE_BUFFER].astype(np.int32).tolist())
        del other
        with open(data_paths(other_prefix)[0], "rb") as f:
            while block := f.read(1 << 24):
                self._write(self._file, block)

    def _size_blocks(self) -> Iterator[np.ndarray]:
        """Every recorded size, in order, as int32 arrays of at most ``SIZE_BUFFER`` entries."""
        if self._spill is not None:
            self._spill.seek(0)
            while block := self._spill.read(4 * self.SIZE_BUFFER):
                yield np.frombuffer(block, dtype=np.int32)
        yield np.frombuffer(self._sizes, dtype=np.int32)

    def finalize(self, idx_path: str | os.PathLike) -> None:
        """Close the ``.bin`` and write the index, streaming sizes then pointers."""
        with writing(self.bin_path):
            self._file.close()
        itemsize = self.dtype.itemsize
        with writing(idx_path), open(idx_path, "wb") as f:
            _write_header(f, self.dtype, self._count)
            for sizes in self._size_blocks():
                f.write(sizes.astype("<i4").tobytes())
            offset = 0
            for sizes in self._size_blocks():
                if len(sizes) == 0:
                    continue
                ends = offset + np.cumsum(sizes.astype(np.int64) * itemsize)
                f.write(np.concatenate(([offset], ends[:-1])).astype("<i8").tobytes())
                offset = int(ends[-1])
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def _write_header(f: IO[bytes], dtype: np.dtype, count: int) -> None:
    f.write(MAGIC)
    f.write(struct.pack("<Q", VERSION))
    f.write(struct.pack("<B", dtype_code(dtype)))
    f.write(struct.pack("<Q", count))


def write_index(idx_path: str | os.PathLike, dtype: np.dtype, sizes: np.ndarray) -> None:
    """Write an ``.idx`` file for sequences of ``sizes`` elements of ``dtype``."""
    sizes = np.asarray(sizes, dtype=np.int32)
    pointers = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    with writing(idx_path), open(idx_path, "wb") as f:
        _write_header(f, np.dtype(dtype), len(sizes))
        f.write(sizes.astype("<i4").tobytes(order="C"))
        f.write(pointers.astype("<i8").tobytes(order="C"))


class IndexedDataset:
    """Read-only view of a binarized dataset; ``ds[i]`` is sequence ``i`` as a numpy array."""

    def __init__(self, prefix: str | os.PathLike) -> None:
        self.prefix = os.fspath(prefix)
        bin_path, idx_path = data_paths(prefix)
        for p in (bin_path, idx_path):
            if not p.is_file():
                raise RnnkitError(f"{p}: no such file (binarize the data with `rnnkit preprocess`)")
        with open(idx_path, "rb") as f:
            header = f.read(_HEADER)
        if len(header) < _HEADER or header[: len(MAGIC)] != MAGIC:
            raise RnnkitError(f"{idx_path}: not a binarized index (bad magic)")
        (version,) = struct.unpack("<Q", header[9:17])
        if version != VERSION:
            raise RnnkitError(f"{idx_path}: unsupported index version {version}")
        code = header[17]
        if code not in DTYPE_CODES:
            raise RnnkitError(f"{idx_path}: unknown dtype code {code}")
        self.dtype = np.dtype(DTYPE_CODES[code])
        (n,) = struct.unpack("<Q", header[18:26])
        expected = _HEADER + n * 12
        if idx_path.stat().st_size < expected:
            raise RnnkitError(f"{idx_path}: truncated index ({n} sequences need {expected} bytes)")
        self._scan: tuple[int, bool] | None = None  # see _layout
        self._idx = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.sizes = np.frombuffer(self._idx, dtype="<i4", count=n, offset=_HEADER)
        self.pointers = np.frombuffer(self._idx, dtype="<i8", count=n, offset=_HEADER + n * 4)
        nbytes = bin_path.stat().st_size
        total = int(self.pointers[-1]) + int(self.sizes[-1]) * self.dtype.itemsize if n else 0
        if nbytes < total:
            raise RnnkitError(f"{bin_path}: truncated data ({nbytes} bytes, index needs {total})")
        # np.memmap cannot map an empty file; an empty dataset has nothing to read anyway.
        self._bin = (
            np.memmap(bin_path, mode="r", dtype=self.dtype)
            if nbytes
            else np.zeros(0, dtype=self.dtype)
        )

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sequence {i} out of range for {len(self)} sequences")
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._bin[start : start + int(self.sizes[i])]

    @property
    def num_tokens(self) -> int:
        """Total number of elements in all sequences (the index is read once, in blocks)."""
        return self._layout()[0]

    def _layout(self) -> tuple[int, bool]:
        """(total elements, whether the sequences lie back to back in order from byte 0).

        Read from the ``.idx`` file in blocks of :data:`SCAN_BLOCK` entries rather than through
        the map, so neither the process's memory nor its mapped pages grow with the corpus
        (a 100M-token corpus has a 50 MB index); computed once.
        """
        if self._scan is None:
            self._scan = _scan_index(data_paths(self.prefix)[1], len(self), self.dtype.itemsize)
        return self._scan

    def stream(self) -> np.ndarray:
        """Every sequence back to back as one flat memory-mapped array, for language models.

        A zero-copy view: nothing is read until it is indexed. Valid because the writer lays
        sequences out contiguously in order; for a file whose pointers are not contiguous,
        sequences are gathered into memory instead.
        """
        n = len(self)
        if n == 0:
            return self._bin[:0]
        total, contiguous = self._layout()
        if contiguous:
            return self._bin[:total]
        return np.concatenate([self[i] for i in range(n)])


SCAN_BLOCK = 1 << 18  # index entries read at a time by _scan_index (1 MB of sizes, 2 of pointers)


def _scan_index(idx_path: Path, n: int, itemsize: int) -> tuple[int, bool]:
    """Sum the sizes of an ``n``-sequence index and check its pointers are back to back."""
    total, contiguous = 0, True
    with open(idx_path, "rb") as f:
        for start in range(0, n, SCAN_BLOCK):
            count = min(SCAN_BLOCK, n - start)
            f.seek(_HEADER + 4 * start)
            sizes = np.fromfile(f, dtype="<i4", count=count).astype(np.int64)
            if contiguous:
                f.seek(_HEADER + 4 * n + 8 * start)
                pointers = np.fromfile(f, dtype="<i8", count=count)
                expected = (total + np.cumsum(sizes) - sizes) * itemsize  # each one's start
                contiguous = np.array_equal(pointers, expected)
            total += int(sizes.sum())
    return total, contiguous
