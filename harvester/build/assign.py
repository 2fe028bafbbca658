"""Split assignment: a document keeps the split it was published in; a new member of a
cluster joins the split of the cluster's best-ranked published member; anything else is
drawn from a salted hash of its group key (`splits.group_by`)."""

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
) -> npt.NDArray[np.object_]:
    """The split of every candidate."""
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
        if prior[i] is not None:
            out[i] = prior[i]
        else:
            cluster = int(labels[i])
            out[i] = inherited[cluster] if cluster in inherited else assign(key[i], salt, ratios)
    return out
