"""Dedup steps: representative rank, exact duplicates, near duplicates (LSH candidates
verified on the exact shingle sets, texts read only for the documents in candidate pairs),
clusters as connected components. Every step is vectorised; no Python loop over documents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from harvester.build.candidates import Candidates, FileRows, by_file, file_texts
from harvester.build.executor import Executor
from harvester.build.spill import Ragged
from harvester.pipeline.dedup import candidate_pairs, jaccard
from harvester.pipeline.text import ngram_hashes, word_hashes
from harvester.store.blob import BlobStore

IntArray = npt.NDArray[np.int64]
_VERIFY_PAIRS = 1 << 15
"""Pairs decided at once: their documents' shingle sets, at most 2 per pair, are in memory."""


@dataclass(frozen=True)
class Clusters:
    """Each document's cluster, named by its representative's position."""

    labels: IntArray
    exact_duplicates: int
    near_duplicates: int
    verified: IntArray
    """The near-duplicate pairs verified (positions), for the leakage check."""
    edges: IntArray
    """Every duplicate pair found: exact (to the best-ranked copy) and verified near."""

    @property
    def sizes(self) -> IntArray:
        """Members of each document's cluster."""
        counts: IntArray = np.bincount(self.labels, minlength=len(self.labels))
        return counts[self.labels]

    def removable(self, candidates: Candidates) -> npt.NDArray[np.bool_]:
        """Who `dedup.action: remove` takes out: every member of a cluster but its
        representative, except a published document that is not itself a duplicate of the
        representative (a cluster chains: a page bridging two published documents must not
        make one of them disappear)."""
        n = len(self.labels)
        out = self.labels != np.arange(n)
        prior = candidates.meta.column("prior").is_valid().to_numpy(zero_copy_only=False)
        direct = np.zeros(n, bool)
        for a, b in (self.edges[:, 0], self.edges[:, 1]), (self.edges[:, 1], self.edges[:, 0]):
            direct[a[self.labels[a] == b]] = True  # a is a duplicate of its representative
        removable: npt.NDArray[np.bool_] = out & (direct | ~prior)
        return removable

    @property
    def with_duplicates(self) -> int:
        """Clusters of more than one document."""
        return int(np.sum(np.bincount(self.labels, minlength=len(self.labels)) > 1))


def rank(candidates: Candidates) -> IntArray:
    """Representative preference, lower first: published before, then earliest fetched,
    longest, smallest id."""
    meta = candidates.meta
    by_id = pc.sort_indices(meta, [("id", "ascending")]).to_numpy()
    id_order = np.empty(len(by_id), np.int64)
    id_order[by_id] = np.arange(len(by_id))
    fetched = meta.column("fetched_at").cast("int64").to_numpy()
    length = meta.column("length").to_numpy()
    from_parent = meta.column("from_parent").to_numpy(zero_copy_only=False)
    order = np.lexsort((id_order, -length, fetched, ~from_parent))
    out = np.empty(len(order), np.int64)
    out[order] = np.arange(len(order))
    return out


def best_by(codes: IntArray, rank: IntArray) -> IntArray:
    """For each position, the best-ranked position with the same code."""
    order = np.lexsort((rank, codes))
    starts = np.concatenate([[True], codes[order][1:] != codes[order][:-1]])
    best = np.empty(int(codes.max()) + 1 if len(codes) else 0, np.int64)
    best[codes[order][starts]] = order[starts]
    return best[codes]


def components(edges: IntArray, rank: IntArray) -> IntArray:
    """Connected components of the graph of `edges` over `len(rank)` documents, each named
    by its best-ranked member."""
    n = len(rank)
    graph = coo_matrix(
        (np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n)
    ).tocsr()
    _, component = connected_components(graph, directed=False)
    return best_by(component.astype(np.int64), rank)


def cluster(
    store: BlobStore,
    candidates: Candidates,
    rank: IntArray,
    threshold: float,
    ngram: int,
    executor: Executor,
    scratch: Path,
) -> Clusters:
    """Exact duplicates by content hash, then near duplicates among the exact survivors."""
    n = len(candidates)
    hashes = pc.dictionary_encode(candidates.meta.column("content_sha256")).combine_chunks()
    exact = best_by(hashes.indices.to_numpy().astype(np.int64), rank)
    survivors = np.flatnonzero(exact == np.arange(n))
    pairs = candidate_pairs(candidates.sigs, threshold, survivors)
    verified = _verify(store, candidates, pairs, threshold, ngram, executor, scratch)
    duplicates = np.flatnonzero(exact != np.arange(n))
    edges = np.concatenate([np.stack([duplicates, exact[duplicates]], axis=1), verified])
    labels = components(edges, rank)
    return Clusters(
        labels=labels,
        exact_duplicates=len(duplicates),
        near_duplicates=len(survivors) - len(np.unique(labels)),
        verified=verified,
        edges=edges,
    )


def _file_shingles(
    task: tuple[BlobStore, FileRows, int],
) -> list[tuple[int, npt.NDArray[np.uint32]]]:
    """One file's step: the shingle set of each of its rows."""
    store, part, ngram = task
    return [
        (position, np.unique(ngram_hashes(word_hashes(text or ""), ngram)))
        for position, text in file_texts(store, part)
    ]


def _verify(
    store: BlobStore,
    candidates: Candidates,
    pairs: IntArray,
    threshold: float,
    ngram: int,
    executor: Executor,
    scratch: Path,
) -> IntArray:
    """The pairs whose true Jaccard of shingle sets reaches `threshold`: each document's
    text is read once, from its file, and kept only as its set of shingle hashes, on local
    disk; the pairs are then decided a block at a time."""
    if len(pairs) == 0:
        return np.empty((0, 2), np.int64)
    tasks = [(store, part, ngram) for part in by_file(candidates, np.unique(pairs))]
    shingles = Ragged(scratch / "shingles", len(candidates))
    for found in executor.map(_file_shingles, tasks):
        for position, values in found:
            shingles.append(position, values)
    shingles.close()
    exact = np.empty(len(pairs), np.float64)
    for start in range(0, len(pairs), _VERIFY_PAIRS):
        block = pairs[start : start + _VERIFY_PAIRS]
        sets = shingles.read(block.ravel())
        exact[start : start + len(block)] = [jaccard(sets[a], sets[b]) for a, b in block.tolist()]
    verified: IntArray = pairs[exact >= threshold]
    return verified
