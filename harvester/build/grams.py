"""13-gram overlap between documents: the decontamination of evaluation splits and the
leakage rate. Every kept document's 13-grams are hashed to 64 bits (at 32, a million pages'
grams collide by chance on several percent of lookups) and sampled (1 in 8, the same in every
text), each distinct once per document (≈ 58 grams, 700 bytes, for a 3.4 KB page), kept on local
disk and compared by sorting an eighth of them at a time, never pairwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harvester.build.candidates import Candidates, FileRows, by_file, file_texts
from harvester.build.executor import Executor
from harvester.build.spill import Buckets
from harvester.pipeline.text import wide_ngram_hashes, word_hashes
from harvester.store.blob import BlobStore

IntArray = npt.NDArray[np.int64]

N = 13
_SAMPLE_SHIFT = np.uint64(61)  # grams whose top three bits are 0: an unbiased 1/8 sample
_PARTITIONS = 8
_PARTITION_SHIFT = 58  # the three bits under the sample's
MIN_SHARED = 2
"""Sampled grams two documents must share to be related: one can be a common phrase."""
MAX_HOLDERS = 50
"""A gram held by more documents is boilerplate or a stock phrase: it relates no pair (as
GPT-3's decontamination skipped frequent n-grams), though it still counts in the rate."""


@dataclass(frozen=True)
class Grams:
    """Distinct sampled 13-gram hashes of some documents with the position of each gram's
    document, on local disk in `_PARTITIONS` disjoint sets of values: the steps below sort
    one set at a time, so their scratch is an eighth of the grams'."""

    partitions: Buckets
    held: IntArray
    """Sampled grams of each document."""


def sampled(text: str | None) -> npt.NDArray[np.uint64]:
    """A text's distinct sampled 13-gram hashes."""
    grams = wide_ngram_hashes(word_hashes(text or ""), N)
    return np.unique(grams[(grams >> _SAMPLE_SHIFT) == 0])


def _file_grams(
    task: tuple[BlobStore, FileRows],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int32]]:
    """One file's step: the sampled grams of its rows, with their owners."""
    store, part = task
    values: list[npt.NDArray[np.uint64]] = [np.empty(0, np.uint64)]
    owners: list[npt.NDArray[np.int32]] = [np.empty(0, np.int32)]
    for position, text in file_texts(store, part):
        grams = sampled(text)
        values.append(grams)
        owners.append(np.full(len(grams), position, np.int32))
    return np.concatenate(values), np.concatenate(owners)


def collect(
    store: BlobStore,
    candidates: Candidates,
    positions: IntArray,
    executor: Executor,
    scratch: Path,
) -> Grams:
    """The sampled grams of the given candidates, one step per file, into `scratch`."""
    tasks = [(store, part) for part in by_file(candidates, positions)]
    partitions = Buckets(scratch, _PARTITIONS, _PARTITION_SHIFT)
    held = np.zeros(len(candidates), np.int64)
    for values, owners in executor.map(_file_grams, tasks):
        partitions.append(values, owners)
        held += np.bincount(owners, minlength=len(held))
    partitions.close()
    return Grams(partitions, held)


def related(grams: Grams, n: int, overlap: float) -> IntArray:
    """Pairs of documents (positions below `n`) sharing at least `overlap` of the smaller
    one's sampled grams, and at least `MIN_SHARED`."""
    pair, shared = np.empty(0, np.int64), np.empty(0, np.int64)
    for values, owners in grams.partitions:
        order = np.argsort(values, kind="stable")
        values, doc = values[order], owners[order].astype(np.int64)
        del order, owners
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(values)]]))
        del values
        codes: list[IntArray] = [pair]
        counts: list[IntArray] = [shared]
        for size in np.unique(sizes[(sizes >= 2) & (sizes <= MAX_HOLDERS)]).tolist():
            members = doc[starts[sizes == size][:, None] + np.arange(size)]
            a, b = np.triu_indices(size, 1)
            first, second = members[:, a].ravel(), members[:, b].ravel()
            codes.append(np.minimum(first, second) * n + np.maximum(first, second))
            counts.append(np.ones(len(first), np.int64))
        # Counted per partition: a cluster's pairs repeat once per shared gram, and all the
        # partitions' repeats at once would outgrow the grams themselves.
        pair, at = np.unique(np.concatenate(codes), return_inverse=True)
        shared = np.bincount(at, weights=np.concatenate(counts)).astype(np.int64)
    first, second = pair // n, pair % n
    smaller = np.minimum(grams.held[first], grams.held[second])
    close = shared >= np.maximum(MIN_SHARED, overlap * smaller)
    return np.stack([first[close], second[close]], axis=1)


def rate_in(grams: Grams, split: npt.NDArray[np.object_], side: str, reference: str) -> float:
    """Share of the grams of `side` documents (distinct in each) that occur in a `reference`
    document: GPT-3's contamination measure, on the sample."""
    sides = np.unique(split)  # compared as small codes: comparing objects is slow
    code = {name: at for at, name in enumerate(sides.tolist())}
    if side not in code or reference not in code:
        return 0.0
    of = np.searchsorted(sides, split).astype(np.int8)
    found = total = 0
    for values, owners in grams.partitions:
        mine_of = of[owners]
        mine = values[mine_of == code[side]]
        # Sorted, then binary search: numpy's hashed isin is several times slower and
        # larger on millions of random 64-bit values.
        theirs = np.sort(values[mine_of == code[reference]])
        total += len(mine)
        if len(mine) and len(theirs):
            at = np.minimum(np.searchsorted(theirs, mine), len(theirs) - 1)
            found += int(np.sum(theirs[at] == mine))
    return found / total if total else 0.0
