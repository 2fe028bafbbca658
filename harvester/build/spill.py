"""Arrays the build keeps in files on local disk instead of in memory, so that its peak
memory does not grow with what it computes per document (signatures, shingle sets, 13-gram
samples). Each is read back by explicit reads of the parts wanted; none stays mapped, so
what was read leaves the process once used (the page cache may keep it, outside the
process's memory)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]


class Matrix:
    """An (n, width) uint32 matrix in a file: one row per document."""

    def __init__(self, path: Path, rows: int, width: int) -> None:
        self.path = path
        self.shape = (rows, width)
        with open(path, "wb") as handle:
            handle.truncate(rows * width * 4)

    def __len__(self) -> int:
        return self.shape[0]

    def _mapped(self, mode: Literal["r", "r+"]) -> np.memmap[Any, np.dtype[np.uint32]]:
        return np.memmap(self.path, np.uint32, mode, shape=self.shape)

    def write(self, positions: IntArray, rows: U32) -> None:
        """Set the given rows; the mapping lasts this call only."""
        if len(positions):
            mapped = self._mapped("r+")
            mapped[positions] = rows
            mapped.flush()
            del mapped

    def take(self, positions: IntArray) -> U32:
        """The given rows, as an array in memory."""
        if not len(positions):
            return np.empty((0, self.shape[1]), np.uint32)
        mapped = self._mapped("r")
        rows: U32 = np.array(mapped[positions])
        del mapped
        return rows

    def blocks(self, size: int = 1 << 16) -> Iterator[tuple[int, U32]]:
        """(first position, rows) of consecutive blocks of `size` rows, read in turn."""
        rows, width = self.shape
        with open(self.path, "rb") as handle:
            for start in range(0, rows, size):
                count = min(size, rows - start) * width
                block = np.fromfile(handle, np.uint32, count)
                yield start, block.reshape(-1, width)


class Ragged:
    """Variable-length uint32 arrays in a file, each stored under a document's position."""

    def __init__(self, path: Path, n: int) -> None:
        self.path = path
        self._offset = np.zeros(n, np.int64)
        self._length = np.zeros(n, np.int64)
        self._end = 0
        self._handle = open(path, "wb")  # noqa: SIM115 — appended to until `close`

    def append(self, position: int, values: U32) -> None:
        """Store `values` as the array of `position`."""
        self._handle.write(values.astype(np.uint32, copy=False).tobytes())
        self._offset[position], self._length[position] = self._end, len(values)
        self._end += len(values)

    def close(self) -> None:
        """Done appending: flush what was written."""
        self._handle.close()

    def read(self, positions: IntArray) -> dict[int, U32]:
        """The arrays of the given positions."""
        out: dict[int, U32] = {}
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for position in np.unique(positions).tolist():
                size = int(self._length[position]) * 4
                data = os.pread(fd, size, int(self._offset[position]) * 4)
                out[position] = np.frombuffer(data, np.uint32)
        finally:
            os.close(fd)
        return out


class Buckets:
    """(value, owner) pairs of uint64 values and int32 owners in `count` files, one per value
    range (by the bits under `shift`): appended in any order, read back a bucket at a time."""

    def __init__(self, directory: Path, count: int, shift: int) -> None:
        self._shift, self._mask = np.uint64(shift), np.uint64(count - 1)
        self._paths = [(directory / f"{b}.values", directory / f"{b}.owners") for b in range(count)]
        self._handles = [(open(v, "wb"), open(o, "wb")) for v, o in self._paths]  # noqa: SIM115

    def append(self, values: npt.NDArray[np.uint64], owners: npt.NDArray[np.int32]) -> None:
        """Add pairs, each to its value's bucket."""
        bucket = (values >> self._shift) & self._mask
        for number, (value_file, owner_file) in enumerate(self._handles):
            inside = bucket == number
            value_file.write(values[inside].tobytes())
            owner_file.write(owners[inside].tobytes())

    def close(self) -> None:
        """Done appending."""
        for value_file, owner_file in self._handles:
            value_file.close()
            owner_file.close()

    def __iter__(self) -> Iterator[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int32]]]:
        """(values, owners) of each bucket in turn."""
        for value_path, owner_path in self._paths:
            yield np.fromfile(value_path, np.uint64), np.fromfile(owner_path, np.int32)
