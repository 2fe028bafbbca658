"""A version's build as steps over the candidates: gather, rank, cluster, keep, split,
check leakage, then write everything but the manifest. The manifest, the commit, is the
caller's to write, after its last fence check (`harvester.build.process`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harvester.build import assign, cluster, grams, leakage, shards
from harvester.build.candidates import Candidates, gather
from harvester.build.executor import LOCAL, Executor
from harvester.build.inputs import BuildInput
from harvester.errors import BuildError, LeakageError
from harvester.pipeline.minhash import lsh_bands
from harvester.pipeline.splits import default_salt
from harvester.store.blob import BlobStore
from harvester.store.card import render_card
from harvester.store.layout import CARD, MANIFEST, version_prefix
from harvester.store.manifest import Changes, DedupReport, Leakage, Manifest
from harvester.store.snapshots import Snapshots


class Unchanged(Exception):
    """The job changed no document: the latest version stays, and no copy of it is made."""

    def __init__(self, manifest: Manifest, stats: dict[str, int]) -> None:
        super().__init__(manifest, stats)  # its arguments: the exception pickles as it is
        self.manifest = manifest
        self.stats = stats
        """The build's counters (what dedup removed, for one)."""

    def __str__(self) -> str:
        return f"{self.manifest.dataset} unchanged since v{self.manifest.version}"


def prepare(
    store: BlobStore,
    job: BuildInput,
    fence: Callable[[], None],
    now: datetime | None = None,
    executor: Executor = LOCAL,
) -> Manifest:
    """Write the next version of the job's dataset but its manifest, which is returned.

    `fence()` runs before the first write into the version's directory; it raises when the
    build may no longer write (lease lost, cancelled). Raises `Unchanged` when there is
    nothing new to publish."""
    with tempfile.TemporaryDirectory(prefix="harvester-build-") as scratch:
        return _prepare(store, job, fence, now, executor, Path(scratch))


def _prepare(
    store: BlobStore,
    job: BuildInput,
    fence: Callable[[], None],
    now: datetime | None,
    executor: Executor,
    scratch: Path,
) -> Manifest:
    spec = job.spec
    dataset, dedup = spec.dataset, spec.pipeline.dedup
    snapshots = Snapshots(store)
    latest = snapshots.latest(dataset)
    parent = snapshots.manifest(dataset, latest) if latest else None
    candidates = gather(store, job, parent, scratch)
    stats = dict(job.stats)

    ranks = cluster.rank(candidates)
    found = cluster.cluster(
        store, candidates, ranks, dedup.threshold, dedup.ngram, executor, scratch
    )
    n = len(candidates)
    removed = found.removable(candidates) if dedup.action == "remove" else np.zeros(n, bool)
    kept = np.flatnonzero(~removed)
    stats["dedup/exact"] = found.exact_duplicates
    stats["dedup/near"] = found.near_duplicates

    salt = parent.split_salt if parent else (spec.splits.salt or default_salt(dataset))
    (scratch / "grams").mkdir()
    kept_grams = grams.collect(store, candidates, kept, executor, scratch / "grams")
    overlap = spec.splits.overlap
    related = grams.related(kept_grams, n, overlap) if overlap else np.empty((0, 2), np.int64)
    stats["build/related_pairs"] = len(related)
    groups = cluster.components(np.concatenate([found.edges, related]), ranks)
    split, moved = assign.splits(candidates, groups, ranks, salt, spec.splits)
    report = leakage.check(candidates, kept, split, found.verified, kept_grams)
    del kept_grams
    if not report.clean:
        raise LeakageError(
            f"leakage across splits: {report.cross_split_near_duplicates} near duplicates, "
            f"{report.cross_split_exact} exact duplicates, {report.cross_split_urls} URLs; "
            "nothing was committed (group splits by cluster to keep duplicates together)"
        )
    if len(kept) == 0:
        raise BuildError("no document passed the pipeline; nothing to commit")
    changes = _changes(candidates, kept, split, moved)
    if parent is not None and not (changes.added or changes.removed or changes.changed or moved):
        raise Unchanged(parent, stats)

    version = (latest or 0) + 1
    prefix = version_prefix(dataset, version)
    fence()
    if store.exists(f"{prefix}/{MANIFEST}"):  # published meanwhile: never touch it
        raise BuildError(f"{dataset} v{version} was committed by another build")
    store.delete_dir(prefix)  # leftovers of a build that crashed before its manifest
    plan = shards.layout(candidates, kept, split, spec.shards)
    ids = candidates.meta.column("id")
    extra = {
        "cluster_id": ids.take(pa.array(found.labels)),
        "cluster_size": pa.array(found.sizes, pa.int32()),
        "split": pa.array(split.tolist(), pa.string()),
    }
    files = shards.write_shards(store, prefix, candidates, plan, extra, spec.shards, executor)
    files.append(shards.write_index(store, prefix, ids, candidates.sigs, kept))
    bands, rows = lsh_bands(dedup.threshold, dedup.num_perm)
    manifest = Manifest(
        dataset=dataset,
        version=version,
        parent_version=latest,
        created_at=now or datetime.now(UTC),
        jobs=job.job_ids,
        spec=spec.model_dump(mode="json"),
        schema={f.name: str(f.type) for f in shards.SNAPSHOT_SCHEMA},
        files=files,
        splits=plan.info,
        split_salt=salt,
        shuffle_seed=spec.shards.shuffle_seed,
        stats=dict(sorted(stats.items())),
        changes=changes,
        dedup=DedupReport(
            threshold=dedup.threshold,
            num_perm=dedup.num_perm,
            ngram=dedup.ngram,
            bands=bands,
            rows_per_band=rows,
            action=dedup.action,
            exact_duplicates=found.exact_duplicates,
            near_duplicates=found.near_duplicates,
            clusters_with_duplicates=found.with_duplicates,
            verified_pairs=len(found.verified),
        ),
        leakage=Leakage(
            cross_split_near_duplicates=report.cross_split_near_duplicates,
            cross_split_exact=report.cross_split_exact,
            cross_split_urls=report.cross_split_urls,
            test_13gram_in_train=report.test_13gram_in_train,
            validation_13gram_in_train=report.validation_13gram_in_train,
            related_pairs=len(related),
        ),
    )
    store.write_bytes(f"{prefix}/{CARD}", render_card(manifest).encode())
    return manifest


def _changes(candidates: Candidates, kept: np.ndarray, split: np.ndarray, moved: int) -> Changes:
    """Added, removed, changed, unchanged and moved documents against the parent, by id,
    hash and split."""
    final = candidates.meta.take(pa.array(kept))
    parent = candidates.parent
    at = pc.index_in(final.column("id"), value_set=parent.column("id"))
    before = pc.take(parent.column("content_sha256"), at)
    same = pc.equal(before, final.column("content_sha256"))
    added = int(pc.sum(pc.is_null(at)).as_py() or 0)
    unchanged = int(pc.sum(pc.fill_null(same, False)).as_py() or 0)
    removed = int(
        pc.sum(pc.invert(pc.is_in(parent.column("id"), value_set=final.column("id")))).as_py() or 0
    )
    return Changes(
        added=added,
        removed=removed,
        changed=len(kept) - added - unchanged,
        unchanged=unchanged,
        moved=moved,
    )
