"""Near-duplicate candidates: LSH banding over MinHash signatures (datasketch's band layout),
and the exact Jaccard of two shingle sets that decides a candidate pair. The build's dedup
step (`harvester.build.cluster`) screens, verifies and clusters with them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from harvester.pipeline.minhash import EMPTY, estimated_jaccard, lsh_bands

SCREEN_MARGIN = 0.12
"""Over 3 standard errors of a 128-permutation estimate near 0.8: the estimate only screens
out clear misses; the exact Jaccard of the shingle sets decides."""
_ALL_PAIRS_UP_TO = 64  # larger buckets are screened block by block
_COMPARE_CELLS = 1 << 24  # signature cells compared at once in a large bucket (16 MB)
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
    """Unique (i, j), i < j, that share at least one LSH band (datasketch's band layout) and
    whose estimated Jaccard could reach `threshold`. Every pair of a bucket is considered,
    however large the bucket: a site's template puts thousands of pages in one, and a pair
    left out there would be missed by dedup and by the leakage check alike."""
    num_perm = signatures.shape[1]
    bands, rows = lsh_bands(threshold, num_perm)
    floor = threshold - SCREEN_MARGIN
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
            found.append(_bucket_pairs(order[start : start + size], signatures, floor))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.unique(np.sort(np.concatenate(found), axis=1), axis=0)
    estimate = estimated_jaccard(signatures[pairs[:, 0]], signatures[pairs[:, 1]])
    screened: IntArray = pairs[estimate >= floor]
    return screened


def _bucket_pairs(members: IntArray, signatures: npt.NDArray[np.uint32], floor: float) -> IntArray:
    """All pairs of a bucket; those of a large one screened by their estimated Jaccard block
    by block, so its m²/2 pairs are never held at once."""
    if len(members) <= _ALL_PAIRS_UP_TO:
        i, j = np.triu_indices(len(members), k=1)
        return np.stack([members[i], members[j]], axis=1)
    sigs = signatures[members]
    block = max(1, _COMPARE_CELLS // (len(members) * sigs.shape[1]))
    found: list[IntArray] = []
    for start in range(0, len(members) - 1, block):
        left = sigs[start : start + block]
        estimate = (left[:, None, :] == sigs[None, start + 1 :, :]).mean(axis=2)
        i, j = np.nonzero(estimate >= floor)
        i, j = start + i, start + 1 + j
        above = j > i
        found.append(np.stack([members[i[above]], members[j[above]]], axis=1))
    return np.concatenate(found)


def jaccard(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> float:
    """Jaccard similarity of two sorted, unique shingle-hash arrays."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - common
    return common / union if union else 1.0
