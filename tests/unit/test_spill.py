"""The build's on-disk arrays read back what was written, in any order of writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harvester.build.spill import Buckets, Matrix, Ragged


def test_matrix_rows_come_back_by_position_and_in_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    want = rng.integers(0, 2**32, (1000, 16), dtype=np.uint32)
    matrix = Matrix(tmp_path / "m", 1000, 16)
    order = rng.permutation(1000)
    for chunk in np.array_split(order, 7):  # scattered writes, as files arrive
        matrix.write(chunk, want[chunk])
    picked = rng.integers(0, 1000, 50)
    assert np.array_equal(matrix.take(picked), want[picked])
    assert matrix.take(np.empty(0, np.int64)).shape == (0, 16)
    blocks = list(matrix.blocks(size=300))
    assert [first for first, _ in blocks] == [0, 300, 600, 900]
    assert np.array_equal(np.concatenate([rows for _, rows in blocks]), want)


def test_ragged_arrays_come_back_by_position(tmp_path: Path) -> None:
    ragged = Ragged(tmp_path / "r", 10)
    stored = {7: np.arange(5, dtype=np.uint32), 2: np.empty(0, np.uint32), 4: np.array([9], "u4")}
    for position, values in stored.items():
        ragged.append(position, values)
    ragged.close()
    got = ragged.read(np.array([4, 7, 2, 7]))
    assert got.keys() == {2, 4, 7}
    assert all(np.array_equal(got[p], stored[p]) for p in got)


def test_buckets_split_pairs_by_value_bits_and_keep_each_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    values = rng.integers(0, 2**63, 5000, dtype=np.uint64) << np.uint64(1)
    owners = rng.integers(0, 100, 5000).astype(np.int32)
    buckets = Buckets(tmp_path, 4, 60)
    buckets.append(values[:3000], owners[:3000])
    buckets.append(values[3000:], owners[3000:])
    buckets.close()
    read = list(buckets)
    assert len(read) == 4
    for number, (bucket_values, _) in enumerate(read):
        assert np.all((bucket_values >> np.uint64(60)) & np.uint64(3) == number)
    got_values = np.concatenate([v for v, _ in read]).tolist()
    got_owners = np.concatenate([o for _, o in read]).tolist()
    pairs = sorted(zip(got_values, got_owners, strict=True))
    assert pairs == sorted(zip(values.tolist(), owners.tolist(), strict=True))
