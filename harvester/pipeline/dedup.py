"""Near-duplicate candidates: LSH banding over MinHash signatures (datasketch's band layout),
and the exact Jaccard of two shingle sets that decides a candidate pair. The build's dedup
step (`harvester.build.cluster`) screens, verifies and clusters with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import numpy.typing as npt

from harvester.pipeline.minhash import EMPTY, estimated_jaccard, lsh_bands

SCREEN_MARGIN = 0.12
"""Over 3 standard errors of a 128-permutation estimate near 0.8: the estimate only screens
out clear misses; the exact Jaccard of the shingle sets decides."""
_ALL_PAIRS_UP_TO = 64  # larger buckets are screened block by block
_COMPARE_CELLS = 1 << 24  # signature cells compared at once in a large bucket (16 MB)
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)
_SCREEN_PAIRS = 1 << 16  # candidate pairs whose signatures are read at once (64 MB)

IntArray = npt.NDArray[np.int64]


class Signatures(Protocol):
    """An (n, num_perm) signature matrix that need not be in memory."""

    shape: tuple[int, int]

    def take(self, positions: IntArray) -> npt.NDArray[np.uint32]:
        """The given rows."""
        ...

    def blocks(self) -> Iterator[tuple[int, npt.NDArray[np.uint32]]]:
        """(first position, rows) of consecutive blocks of rows, in order."""
        ...


def _band_keys(
    signatures: Signatures, bands: int, rows: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Each document's key in each band, (bands, n), and whether its signature is empty:
    one pass over the matrix, block by block."""
    n = signatures.shape[0]
    keys = np.empty((bands, n), np.uint64)
    empty = np.empty(n, bool)
    for first, block in signatures.blocks():
        at = slice(first, first + len(block))
        empty[at] = np.all(block == EMPTY, axis=1)
        wide = block[:, : bands * rows].astype(np.uint64)
        with np.errstate(over="ignore"):
            for band in range(bands):
                key = np.zeros(len(block), dtype=np.uint64)
                for col in range(band * rows, (band + 1) * rows):
                    key = (key ^ wide[:, col]) * _BAND_MIX
                keys[band, at] = key
    return keys, empty


def candidate_pairs(signatures: Signatures, threshold: float, among: IntArray) -> IntArray:
    """Unique (i, j), i < j, of the positions `among`, that share at least one LSH band
    (datasketch's band layout) and whose estimated Jaccard could reach `threshold`. Every
    pair of a bucket is considered, however large the bucket: a site's template puts
    thousands of pages in one, and a pair left out there would be missed by dedup and by the
    leakage check alike. Only the band keys are held for every document; signatures are read
    for the pairs to screen."""
    bands, rows = lsh_bands(threshold, signatures.shape[1])
    floor = threshold - SCREEN_MARGIN
    keys, empty = _band_keys(signatures, bands, rows)
    active = np.zeros(len(empty), bool)
    active[among] = True
    members = np.flatnonzero(active & ~empty)  # texts without words match nothing
    found: list[IntArray] = []
    for band in range(bands):
        band_keys = keys[band, members]
        order = members[np.argsort(band_keys, kind="stable")]
        sorted_keys = keys[band, order]
        same = sorted_keys[1:] == sorted_keys[:-1]
        if not same.any():
            continue
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        sizes = np.diff(np.concatenate((starts, [len(order)])))
        pairs = order[np.stack([starts[sizes == 2], starts[sizes == 2] + 1], axis=1)]
        found.append(pairs.reshape(-1, 2))
        for start, size in zip(starts[sizes > 2], sizes[sizes > 2], strict=True):
            found.append(_bucket_pairs(order[start : start + size], signatures, floor))
    del keys
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.unique(np.sort(np.concatenate(found), axis=1), axis=0)
    keep = np.zeros(len(pairs), bool)
    for start in range(0, len(pairs), _SCREEN_PAIRS):
        chunk = pairs[start : start + _SCREEN_PAIRS]
        estimate = estimated_jaccard(signatures.take(chunk[:, 0]), signatures.take(chunk[:, 1]))
        keep[start : start + len(chunk)] = estimate >= floor
    screened: IntArray = pairs[keep]
    return screened


def _bucket_pairs(members: IntArray, signatures: Signatures, floor: float) -> IntArray:
    """All pairs of a bucket; those of a large one screened by their estimated Jaccard block
    by block, so its m²/2 pairs are never held at once."""
    if len(members) <= _ALL_PAIRS_UP_TO:
        i, j = np.triu_indices(len(members), k=1)
        return np.stack([members[i], members[j]], axis=1)
    sigs = signatures.take(members)
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
