"""Near-duplicate candidates: LSH banding over MinHash signatures (datasketch's band layout),
and the exact Jaccard of two shingle sets that decides a candidate pair. The build's dedup
step (`harvester.build.cluster`) screens, verifies and clusters with them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from harvester.pipeline.minhash import EMPTY, lsh_bands

_ALL_PAIRS_UP_TO = 64  # larger buckets are verified as a star and a chain, not all pairs
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)

IntArray = npt.NDArray[np.int64]


def _band_keys(signatures: npt.NDArray[np.uint32], band: int, rows: int) -> npt.NDArray[np.uint64]:
    block = signatures[:, band * rows : (band + 1) * rows].astype(np.uint64)
    with np.errstate(over="ignore"):
        key = np.zeros(len(signatures), dtype=np.uint64)
        for col in range(rows):
            key = (key ^ block[:, col]) * _BAND_MIX
    return key


def candidate_pairs(signatures: npt.NDArray[np.uint32], threshold: float) -> IntArray:
    """Unique (i, j), i < j, that share at least one LSH band (datasketch's band layout)."""
    num_perm = signatures.shape[1]
    bands, rows = lsh_bands(threshold, num_perm)
    empty = np.all(signatures == EMPTY, axis=1)  # texts without words match nothing
    found: list[IntArray] = []
    for band in range(bands):
        keys = _band_keys(signatures, band, rows)
        order = np.argsort(keys, kind="stable")
        order = order[~empty[order]]
        sorted_keys = keys[order]
        same = sorted_keys[1:] == sorted_keys[:-1]
        if not same.any():
            continue
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        sizes = np.diff(np.concatenate((starts, [len(order)])))
        pairs = order[np.stack([starts[sizes == 2], starts[sizes == 2] + 1], axis=1)]
        found.append(pairs.reshape(-1, 2))
        for start, size in zip(starts[sizes > 2], sizes[sizes > 2], strict=True):
            found.append(_bucket_pairs(order[start : start + size]))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def _bucket_pairs(members: IntArray) -> IntArray:
    if len(members) <= _ALL_PAIRS_UP_TO:
        i, j = np.triu_indices(len(members), k=1)
        return np.stack([members[i], members[j]], axis=1)
    star = np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1)
    chain = np.stack([members[1:-1], members[2:]], axis=1)
    return np.concatenate([star, chain])


def jaccard(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> float:
    """Jaccard similarity of two sorted, unique shingle-hash arrays."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - common
    return common / union if union else 1.0
