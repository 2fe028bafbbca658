"""Exact and near-duplicate clustering: LSH banding over MinHash signatures, candidate pairs
screened by the estimated Jaccard and verified exactly, clusters by union-find, one
representative each.

Every function takes a `rank` array (lower is preferred) so the representative rule lives with
the caller and the outcome is deterministic whatever order documents arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from harvester.pipeline.minhash import EMPTY, estimated_jaccard, lsh_bands
from harvester.pipeline.text import ngram_hashes, word_hashes

_SCREEN_MARGIN = 0.12  # over 3 standard errors of a 128-permutation estimate near 0.8
_ALL_PAIRS_UP_TO = 64  # larger buckets are verified as a star and a chain, not all pairs
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)

IntArray = npt.NDArray[np.int64]


def exact_labels(content_hashes: Sequence[str], rank: IntArray) -> IntArray:
    """For each document, the index of the best-ranked document with the same content hash."""
    best: dict[str, int] = {}
    for i in np.argsort(rank, kind="stable"):
        best.setdefault(content_hashes[i], int(i))
    return np.fromiter((best[h] for h in content_hashes), dtype=np.int64, count=len(rank))


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


def near_pairs(
    signatures: npt.NDArray[np.uint32], threshold: float, texts: Sequence[str], ngram: int
) -> IntArray:
    """Candidate pairs whose true Jaccard of shingle sets reaches `threshold`.

    The MinHash estimate only screens out clear misses (it errs by about 0.035 at 0.8 with
    128 permutations, which would lose a third of the pairs just above the threshold); the
    decision is the exact Jaccard of the two documents' shingle-hash sets."""
    pairs = candidate_pairs(signatures, threshold)
    if len(pairs) == 0:
        return pairs
    estimate = estimated_jaccard(signatures[pairs[:, 0]], signatures[pairs[:, 1]])
    pairs = pairs[estimate >= threshold - _SCREEN_MARGIN]
    shingles = {
        int(i): np.unique(ngram_hashes(word_hashes(texts[int(i)]), ngram)) for i in np.unique(pairs)
    }
    exact = np.fromiter(
        (_jaccard(shingles[a], shingles[b]) for a, b in pairs.tolist()),
        dtype=np.float64,
        count=len(pairs),
    )
    return pairs[exact >= threshold]


def _jaccard(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> float:
    common = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - common
    return common / union if union else 1.0


def cluster_labels(n: int, pairs: IntArray, rank: IntArray) -> IntArray:
    """Union-find over `pairs`; each document's label is its cluster's best-ranked member."""
    parent = np.arange(n, dtype=np.int64)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = int(parent[root])
        while parent[x] != root:  # path compression
            parent[x], x = root, int(parent[x])
        return root

    for a, b in pairs.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            # the better-ranked root wins, so the root is always the representative
            if rank[rb] < rank[ra]:
                ra, rb = rb, ra
            parent[rb] = ra
    return np.fromiter((find(i) for i in range(n)), dtype=np.int64, count=n)
