"""MinHash signatures, computed for many documents at once with array arithmetic.

The hash family is datasketch's `affine32` scheme (MurmurHash3 finaliser, then
`a * h + b mod 2**32` per permutation, with datasketch's own permutation parameters), so a
signature here equals `datasketch.MinHash(scheme="affine32").update_batch(...)` over the same
shingle hashes (tests check it) and interoperates with datasketch's LSH and `jaccard`. What
datasketch does per document we do per batch of documents: one matrix product-and-min over
all their shingles, which is what lifts throughput past Python-level shingling.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from datasketch import MinHash, MinHashLSH

from harvester.pipeline.text import ngram_hashes, word_hashes

SEED = 1
EMPTY = np.uint32(0xFFFFFFFF)
_BATCH_SHINGLES = 1 << 16  # bounds the (perm x shingles) scratch matrix to ~32 MiB at 128


@lru_cache(maxsize=8)
def permutations(num_perm: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """datasketch's affine32 permutation parameters (a, b) for `num_perm`."""
    a, b = MinHash(num_perm=num_perm, seed=SEED, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def fmix32(h: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """MurmurHash3's 32-bit finaliser (datasketch applies it before permuting)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures_of_shingles(
    shingles: Sequence[npt.NDArray[np.uint32]], num_perm: int
) -> npt.NDArray[np.uint32]:
    """One signature row per shingle-hash array; an empty array gives the all-max row."""
    a, b = permutations(num_perm)
    out = np.full((len(shingles), num_perm), EMPTY, dtype=np.uint32)
    start = 0
    while start < len(shingles):
        stop, total = start, 0
        while stop < len(shingles) and (
            total == 0 or total + len(shingles[stop]) <= _BATCH_SHINGLES
        ):
            total += len(shingles[stop])
            stop += 1
        _fill(out, start, shingles[start:stop], a, b)
        start = stop
    return out


def _fill(
    out: npt.NDArray[np.uint32],
    first: int,
    batch: Sequence[npt.NDArray[np.uint32]],
    a: npt.NDArray[np.uint32],
    b: npt.NDArray[np.uint32],
) -> None:
    sizes = np.fromiter((len(s) for s in batch), dtype=np.int64, count=len(batch))
    rows = np.flatnonzero(sizes)
    if len(rows) == 0:
        return
    hv = fmix32(np.concatenate([batch[int(i)] for i in rows]))
    permuted = np.multiply.outer(a, hv)  # (num_perm, shingles); uint32 wraps: mod 2**32
    permuted += b[:, None]
    offsets = np.concatenate(([0], np.cumsum(sizes[rows])[:-1]))
    out[first + rows] = np.minimum.reduceat(permuted, offsets, axis=1).T


def signatures(texts: Sequence[str], num_perm: int, ngram: int) -> npt.NDArray[np.uint32]:
    """MinHash signatures of word `ngram` shingles of lowercased, punctuation-free texts."""
    return signatures_of_shingles([ngram_hashes(word_hashes(t), ngram) for t in texts], num_perm)


# Candidates are verified exactly afterwards, so a false positive costs only a check while a
# false negative is a duplicate kept: weight datasketch's band optimiser towards recall
# (at 0.8 and 128 permutations: 16 bands x 8 rows, P(candidate | J=0.8) = 0.95 instead of 0.40).
_LSH_WEIGHTS = (0.05, 0.95)


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) datasketch chooses for a Jaccard threshold, recall-weighted."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    return lsh.b, lsh.r


def estimated_jaccard(
    sig_a: npt.NDArray[np.uint32], sig_b: npt.NDArray[np.uint32]
) -> npt.NDArray[np.float64]:
    """Row-wise share of agreeing permutations (datasketch's `jaccard`) for paired rows."""
    agree: npt.NDArray[np.float64] = np.mean(sig_a == sig_b, axis=-1)
    return agree
