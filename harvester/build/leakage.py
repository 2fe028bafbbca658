"""The leakage check on a version's kept documents before it may be committed: near and
exact duplicates and URLs across splits (must be none), and the share of validation and test
13-grams found in train."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from harvester.build.candidates import Candidates
from harvester.build.grams import Grams, rate_in


@dataclass(frozen=True)
class LeakageReport:
    """Figures recorded in the manifest; the first three must be zero to commit."""

    cross_split_near_duplicates: int
    cross_split_exact: int
    cross_split_urls: int
    test_13gram_in_train: float
    validation_13gram_in_train: float

    @property
    def clean(self) -> bool:
        """True when no duplicate or URL crosses splits."""
        return not (
            self.cross_split_near_duplicates or self.cross_split_exact or self.cross_split_urls
        )


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
    candidates: Candidates,
    kept: npt.NDArray[np.int64],
    split: npt.NDArray[np.object_],
    verified: npt.NDArray[np.int64],
    grams: Grams,
) -> LeakageReport:
    """`split` is every candidate's; `verified` the near-duplicate pairs among candidates;
    `grams` those of the kept documents."""
    keep = np.zeros(len(candidates), bool)
    keep[kept] = True
    both = verified[keep[verified[:, 0]] & keep[verified[:, 1]]] if len(verified) else verified
    near = int(np.sum(split[both[:, 0]] != split[both[:, 1]])) if len(both) else 0
    meta = candidates.meta.take(pa.array(kept))
    return LeakageReport(
        cross_split_near_duplicates=near,
        cross_split_exact=_crossing(meta.column("content_sha256"), split[kept]),
        cross_split_urls=_crossing(meta.column("url"), split[kept]),
        test_13gram_in_train=round(rate_in(grams, split, "test", "train"), 6),
        validation_13gram_in_train=round(rate_in(grams, split, "validation", "train"), 6),
    )
