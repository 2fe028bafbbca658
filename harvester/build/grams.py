"""13-gram overlap between documents: the decontamination of evaluation splits and the
leakage rate. Every kept document's 13-grams are hashed to 64 bits (at 32, a million pages'
grams collide by chance on several percent of lookups) and sampled (1 in 8, the same in every
text), held as two flat arrays (≈ 70 grams, 840 bytes, for a 3.4 KB page), and compared with
a sort, never pairwise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harvester.build.candidates import Candidates, FileRows, by_file, file_texts
from harvester.build.executor import Executor
from harvester.pipeline.text import wide_ngram_hashes, word_hashes
from harvester.store.blob import BlobStore

IntArray = npt.NDArray[np.int64]

N = 13
_SAMPLE_SHIFT = np.uint64(61)  # grams whose top three bits are 0: an unbiased 1/8 sample
MIN_SHARED = 2
"""Sampled grams two documents must share to be related: one can be a common phrase."""
MAX_HOLDERS = 50
"""A gram held by more documents is boilerplate or a stock phrase: it relates no pair (as
GPT-3's decontamination skipped frequent n-grams), though it still counts in the rate."""


@dataclass(frozen=True)
class Grams:
    """Sampled 13-gram hashes of some documents, end to end, and the position of each
    gram's document."""

    values: npt.NDArray[np.uint64]
    owner: npt.NDArray[np.int32]


def sampled(text: str | None) -> npt.NDArray[np.uint64]:
    """A text's sampled 13-gram hashes, repeats included."""
    grams = wide_ngram_hashes(word_hashes(text or ""), N)
    kept: npt.NDArray[np.uint64] = grams[(grams >> _SAMPLE_SHIFT) == 0]
    return kept


def _file_grams(task: tuple[BlobStore, FileRows]) -> Grams:
    """One file's step: the sampled grams of its rows."""
    store, part = task
    values: list[npt.NDArray[np.uint64]] = [np.empty(0, np.uint64)]
    owners: list[npt.NDArray[np.int32]] = [np.empty(0, np.int32)]
    for position, text in file_texts(store, part):
        grams = sampled(text)
        values.append(grams)
        owners.append(np.full(len(grams), position, np.int32))
    return Grams(np.concatenate(values), np.concatenate(owners))


def collect(
    store: BlobStore, candidates: Candidates, positions: IntArray, executor: Executor
) -> Grams:
    """The sampled grams of the given candidates, one step per file."""
    tasks = [(store, part) for part in by_file(candidates, positions)]
    found = executor.map(_file_grams, tasks)
    return Grams(
        np.concatenate([np.empty(0, np.uint64), *(g.values for g in found)]),
        np.concatenate([np.empty(0, np.int32), *(g.owner for g in found)]),
    )


def related(grams: Grams, n: int, overlap: float) -> IntArray:
    """Pairs of documents (positions below `n`) sharing at least `overlap` of the smaller
    one's distinct sampled grams, and at least `MIN_SHARED`."""
    order = np.lexsort((grams.owner, grams.values))
    gram, doc = grams.values[order], grams.owner[order].astype(np.int64)
    del order
    once = np.concatenate([[True], (gram[1:] != gram[:-1]) | (doc[1:] != doc[:-1])])
    gram, doc = gram[once], doc[once]  # each (gram, document) once
    held = np.bincount(doc, minlength=n)
    starts = np.flatnonzero(np.concatenate([[True], gram[1:] != gram[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(gram)]]))
    del gram
    codes: list[IntArray] = []
    for size in np.unique(sizes[(sizes >= 2) & (sizes <= MAX_HOLDERS)]).tolist():
        members = doc[starts[sizes == size][:, None] + np.arange(size)]  # sorted in each row
        a, b = np.triu_indices(size, 1)
        codes.append((members[:, a] * n + members[:, b]).ravel())
    if not codes:
        return np.empty((0, 2), np.int64)
    pair, shared = np.unique(np.concatenate(codes), return_counts=True)
    first, second = pair // n, pair % n
    smaller = np.minimum(held[first], held[second])
    close = shared >= np.maximum(MIN_SHARED, overlap * smaller)
    return np.stack([first[close], second[close]], axis=1)


def rate_in(grams: Grams, split: npt.NDArray[np.object_], side: str, reference: str) -> float:
    """Share of the grams of `side` documents (repeats counted) that occur in a `reference`
    document: GPT-3's contamination measure, on the sample."""
    sides = np.unique(split)  # compared as small codes: comparing objects is slow
    codes = np.searchsorted(sides, split).astype(np.int8)[grams.owner]
    code = {name: at for at, name in enumerate(sides.tolist())}
    if side not in code or reference not in code:
        return 0.0
    mine = grams.values[codes == code[side]]
    if len(mine) == 0:
        return 0.0
    # Sorted, then binary search: numpy's hashed unique/isin is several times slower and
    # larger on tens of millions of random 64-bit values.
    theirs = np.sort(grams.values[codes == code[reference]])
    if len(theirs) == 0:
        return 0.0
    at = np.minimum(np.searchsorted(theirs, mine), len(theirs) - 1)
    return float(np.mean(theirs[at] == mine))
