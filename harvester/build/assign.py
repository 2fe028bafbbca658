"""Split assignment (`docs/dataset-policy.md`): a cluster with a published member takes the
split of its best-ranked published member, and every member joins it (a published document
whose split differs is moved, and counted); any other document's split is drawn from a salted
hash of its group key (`splits.group_by`)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from harvester.build.candidates import Candidates
from harvester.pipeline.splits import assign
from harvester.spec import Splits


def splits(
    candidates: Candidates,
    labels: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
    salt: str,
    ratios: Splits,
) -> tuple[npt.NDArray[np.object_], int]:
    """The split of every candidate, and how many published documents it moves."""
    prior = candidates.column("prior")
    published = np.flatnonzero(prior != None)  # noqa: E711 (elementwise on objects)
    inherited: dict[int, str] = {}
    for i in published[np.argsort(rank[published], kind="stable")].tolist():
        inherited.setdefault(int(labels[i]), prior[i])
    ids = candidates.column("id")
    keys = {"url": ids, "domain": candidates.column("domain"), "cluster": ids[labels]}
    key = keys[ratios.group_by]
    out = np.empty(len(candidates), dtype=object)
    for i in range(len(candidates)):
        cluster = int(labels[i])
        out[i] = inherited[cluster] if cluster in inherited else assign(key[i], salt, ratios)
    moved = int(np.sum(out[published] != prior[published]))
    return out, moved
