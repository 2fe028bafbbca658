"""The leakage check on a version's kept documents before it may be committed: near and
exact duplicates and URLs across splits (must be none), and the share of test 13-grams found
in train, from texts streamed file by file."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from harvester.build.candidates import Candidates, texts
from harvester.pipeline.leakage import OVERLAP_N, LeakageReport, sampled
from harvester.pipeline.text import ngram_hashes, word_hashes
from harvester.store.blob import BlobStore

_CHUNK = 4096  # train texts whose n-grams are looked up at once


def _crossing(keys: pa.Array, split: npt.NDArray[np.object_]) -> int:
    """Groups of equal keys whose members sit in more than one split."""
    if len(keys) == 0:
        return 0
    pairs = pa.table({"key": keys, "split": pa.array(split.tolist(), pa.string())})
    distinct = (
        pairs.group_by(["key", "split"])
        .aggregate([])
        .group_by("key")
        .aggregate([("split", "count")])
    )
    return int(pc.sum(pc.greater(distinct.column("split_count"), 1)).as_py() or 0)


def check(
    store: BlobStore,
    candidates: Candidates,
    kept: npt.NDArray[np.int64],
    split: npt.NDArray[np.object_],
    verified: npt.NDArray[np.int64],
) -> LeakageReport:
    """`split` is every candidate's; `verified` the near-duplicate pairs among candidates."""
    keep = np.zeros(len(candidates), bool)
    keep[kept] = True
    both = verified[keep[verified[:, 0]] & keep[verified[:, 1]]] if len(verified) else verified
    near = int(np.sum(split[both[:, 0]] != split[both[:, 1]])) if len(both) else 0
    meta = candidates.meta.take(pa.array(kept))
    test = kept[split[kept] == "test"]
    train = kept[split[kept] == "train"]
    return LeakageReport(
        cross_split_near_duplicates=near,
        cross_split_exact=_crossing(meta.column("content_sha256"), split[kept]),
        cross_split_urls=_crossing(meta.column("url"), split[kept]),
        test_13gram_in_train=round(_overlap(store, candidates, test, train), 6),
    )


def _grams(text: str | None) -> npt.NDArray[np.uint32]:
    return sampled(ngram_hashes(word_hashes(text or ""), OVERLAP_N))


def _overlap(
    store: BlobStore,
    candidates: Candidates,
    test: npt.NDArray[np.int64],
    train: npt.NDArray[np.int64],
) -> float:
    """Share of test 13-grams (hash-sampled, with repeats) that also occur in train. Only the
    test side is held; train texts stream past it."""
    grams = [_grams(text) for _, text in texts(store, candidates, test)]
    test_grams = np.concatenate(grams) if grams else np.empty(0, np.uint32)
    if len(test_grams) == 0:
        return 0.0
    wanted = np.unique(test_grams)
    found = np.zeros(len(wanted), bool)
    chunk: list[npt.NDArray[np.uint32]] = []

    def mark() -> None:
        seen = np.concatenate(chunk)
        found[np.searchsorted(wanted, seen[np.isin(seen, wanted)])] = True
        chunk.clear()

    for _, text in texts(store, candidates, train):
        chunk.append(_grams(text))
        if len(chunk) >= _CHUNK:
            mark()
    if chunk:
        mark()
    return float(np.isin(test_grams, wanted[found]).mean())
