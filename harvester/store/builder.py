"""The build phase: parent snapshot + staging parts → the next immutable snapshot version.

Order of work: gather candidates (carried parent documents and newly staged ones), exact and
near dedup, split assignment, leakage check, then the files: data shards, the signature index,
the card, and the manifest last. Nothing is written before the leakage check passes, and a
version without a manifest does not exist, so a crash at any point leaves either the previous
state or the complete new version.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from harvester.crawl.scope import ScopeRules
from harvester.crawl.staging import STAGING_SCHEMA
from harvester.errors import BuildError, LeakageError
from harvester.pipeline import leakage
from harvester.pipeline.dedup import cluster_labels, exact_labels, near_pairs
from harvester.pipeline.document import DOCUMENT_SCHEMA
from harvester.pipeline.minhash import lsh_bands, signatures
from harvester.pipeline.splits import SPLITS, assign, default_salt
from harvester.spec import JobSpec
from harvester.store.blob import BlobStore
from harvester.store.card import render_card
from harvester.store.manifest import (
    Changes,
    DedupReport,
    FileEntry,
    Leakage,
    Manifest,
    SplitInfo,
)
from harvester.store.snapshots import CARD, MANIFEST, SIGNATURES, Snapshots, version_prefix

SNAPSHOT_SCHEMA = pa.schema(
    [
        *DOCUMENT_SCHEMA,
        ("cluster_id", pa.string()),
        ("cluster_size", pa.int32()),
        ("split", pa.string()),
    ]
)
_INDEX_SCHEMA = pa.schema([("id", pa.string()), ("minhash", pa.list_(pa.uint32()))])


@dataclass(frozen=True)
class BuildInput:
    """What one build consumes: the job(s), their staging parts and what they learnt."""

    spec: JobSpec
    job_ids: list[str]
    staging: list[str]
    """Blob paths of the committed staging parts."""
    gone: frozenset[str]
    """URLs answered 404/410 or disallowed by robots.txt now: their documents leave the
    snapshot (so do those of parent URLs the job's scope no longer takes in)."""
    stats: dict[str, int]
    """Crawl-phase counters, merged into the manifest."""


@dataclass
class _Candidates:
    table: pa.Table  # DOCUMENT_SCHEMA columns + prior_split + from_parent
    signatures: npt.NDArray[np.uint32]
    parent_hashes: dict[str, str]  # id -> content hash in the parent


def _signature_matrix(column: pa.ChunkedArray, num_perm: int) -> npt.NDArray[np.uint32]:
    flat = column.combine_chunks().flatten() if len(column) else pa.array([], pa.uint32())
    return np.asarray(flat, dtype=np.uint32).reshape(-1, num_perm)


class SnapshotBuilder:
    """Builds and commits snapshot versions in a blob store."""

    def __init__(
        self, store: BlobStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._snapshots = Snapshots(store)
        self._clock = clock

    def build(self, job: BuildInput, fence: Callable[[], None] = lambda: None) -> Manifest:
        """Build and commit the next version of `job.spec.dataset`; returns its manifest.

        `fence()` runs before the first write into the version's directory and right before the
        manifest is written; it raises (`LeaseLost`) when this builder's lease has moved."""
        spec = job.spec
        dataset, dedup = spec.dataset, spec.pipeline.dedup
        latest = self._snapshots.latest(dataset)
        parent = self._snapshots.manifest(dataset, latest) if latest else None
        candidates = self._candidates(job, parent)
        table, sigs = candidates.table, candidates.signatures
        stats: dict[str, int] = dict(job.stats)

        # ---- dedup: exact first, then MinHash near duplicates among the exact survivors
        rank = self._rank(table)
        exact = exact_labels(table.column("content_sha256").to_pylist(), rank)
        survivors = np.flatnonzero(exact == np.arange(len(exact)))
        texts = table.column("text").to_pylist()
        survivor_texts = [texts[i] for i in survivors]
        verified = near_pairs(sigs[survivors], dedup.threshold, survivor_texts, dedup.ngram)
        exact_pairs = np.flatnonzero(exact != np.arange(len(exact)))
        pairs = np.concatenate(
            [np.stack([exact_pairs, exact[exact_pairs]], axis=1), survivors[verified]]
        ).astype(np.int64)
        labels = cluster_labels(len(table), pairs, rank)
        sizes = np.bincount(labels, minlength=len(table))
        ids = np.asarray(table.column("id").to_pylist(), dtype=object)
        clusters_with_dups = int(np.sum(sizes > 1))
        near_removed = len(survivors) - len(np.unique(labels))
        keep = (
            labels == np.arange(len(table))
            if dedup.action == "remove"
            else np.ones(len(table), bool)
        )
        stats["dedup/exact"] = len(table) - len(survivors)
        stats["dedup/near"] = near_removed

        # ---- splits: inherited from the parent, then from the cluster, then by hash
        salt = parent.split_salt if parent else (spec.splits.salt or default_salt(dataset))
        split_of = self._assign_splits(table, labels, rank, ids, salt, spec)

        kept = np.flatnonzero(keep)
        final = (
            table.select(DOCUMENT_SCHEMA.names)
            .take(pa.array(kept))
            .append_column("cluster_id", pa.array(ids[labels[kept]].tolist(), pa.string()))
            .append_column("cluster_size", pa.array(sizes[labels[kept]], pa.int32()))
            .append_column("split", pa.array([split_of[i] for i in kept], pa.string()))
        )
        final_sigs = sigs[kept]
        order = np.argsort(np.asarray(final.column("id").to_pylist(), dtype=object), kind="stable")
        final, final_sigs = final.take(pa.array(order)), final_sigs[order]

        report = leakage.check(
            final.column("url").to_pylist(),
            final.column("content_sha256").to_pylist(),
            final.column("text").to_pylist(),
            final.column("split").to_pylist(),
            final_sigs,
            dedup.threshold,
            dedup.ngram,
        )
        if not report.clean:
            raise LeakageError(
                f"leakage across splits: {report.cross_split_near_duplicates} near duplicates, "
                f"{report.cross_split_exact} exact duplicates, {report.cross_split_urls} URLs; "
                "nothing was committed (group splits by cluster to keep duplicates together)"
            )
        if final.num_rows == 0:
            raise BuildError("no document passed the pipeline; nothing to commit")

        changes = self._changes(final, candidates.parent_hashes)
        bands, rows = lsh_bands(dedup.threshold, dedup.num_perm)
        version = (latest or 0) + 1
        prefix = version_prefix(dataset, version)
        fence()
        if self._store.exists(f"{prefix}/{MANIFEST}"):  # published meanwhile: never touch it
            raise BuildError(f"{dataset} v{version} was committed by another build")
        self._store.delete_dir(prefix)  # leftovers of a build that crashed before its manifest
        files, split_info = self._write_shards(prefix, final, spec)
        files.append(self._write_index(prefix, final, final_sigs))
        manifest = Manifest(
            dataset=dataset,
            version=version,
            parent_version=latest,
            created_at=self._clock(),
            jobs=job.job_ids,
            spec=spec.model_dump(mode="json"),
            schema={f.name: str(f.type) for f in SNAPSHOT_SCHEMA},
            files=files,
            splits=split_info,
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
                exact_duplicates=stats["dedup/exact"],
                near_duplicates=near_removed,
                clusters_with_duplicates=clusters_with_dups,
                verified_pairs=len(verified),
            ),
            leakage=Leakage(
                cross_split_near_duplicates=report.cross_split_near_duplicates,
                cross_split_exact=report.cross_split_exact,
                cross_split_urls=report.cross_split_urls,
                test_13gram_in_train=report.test_13gram_in_train,
            ),
        )
        self._store.write_bytes(f"{prefix}/{CARD}", render_card(manifest).encode())
        fence()
        self._store.write_bytes(f"{prefix}/{MANIFEST}", manifest.to_json())  # the commit
        return manifest

    # ---- candidates ------------------------------------------------------------------

    def _candidates(self, job: BuildInput, parent: Manifest | None) -> _Candidates:
        dedup = job.spec.pipeline.dedup
        staged = (
            self._store.read_parquet(job.staging) if job.staging else STAGING_SCHEMA.empty_table()
        )
        refetched = set(staged.column("url").to_pylist())
        fresh = staged.filter(pc.is_null(staged.column("dropped")))
        fresh = _latest_per_url(fresh)
        fresh_sigs = _signature_matrix(fresh.column("minhash"), dedup.num_perm)
        parent_hashes: dict[str, str] = {}
        prior: dict[str, str] = {}
        parts = [fresh.select(DOCUMENT_SCHEMA.names)]
        sig_parts = [fresh_sigs]
        flags = [np.zeros(fresh.num_rows, dtype=bool)]
        if parent is not None:
            old = self._snapshots.documents(parent)
            old_ids = old.column("id").to_pylist()
            parent_hashes = dict(
                zip(old_ids, old.column("content_sha256").to_pylist(), strict=True)
            )
            prior = dict(zip(old_ids, old.column("split").to_pylist(), strict=True))
            urls = old.column("url").to_pylist()
            scope = ScopeRules(job.spec.scope, [str(s) for s in job.spec.seeds])
            carry = np.array(
                [
                    u not in refetched and u not in job.gone and scope.rejection(u, 0) is None
                    for u in urls
                ],
                dtype=bool,
            )
            carried = old.filter(pa.array(carry)).select(DOCUMENT_SCHEMA.names)
            parts.append(carried.cast(DOCUMENT_SCHEMA))
            sig_parts.append(self._parent_signatures(parent, carried, job.spec))
            flags.append(np.ones(carried.num_rows, dtype=bool))
        table = pa.concat_tables(parts)
        ids = table.column("id").to_pylist()
        table = table.append_column(
            "prior_split", pa.array([prior.get(i) for i in ids], pa.string())
        )
        table = table.append_column("from_parent", pa.array(np.concatenate(flags)))
        return _Candidates(table, np.concatenate(sig_parts), parent_hashes)

    def _parent_signatures(
        self, parent: Manifest, carried: pa.Table, spec: JobSpec
    ) -> npt.NDArray[np.uint32]:
        dedup = spec.pipeline.dedup
        if (parent.dedup.num_perm, parent.dedup.ngram) != (dedup.num_perm, dedup.ngram):
            # The spec changed the signature family: recompute from the stored text.
            return signatures(carried.column("text").to_pylist(), dedup.num_perm, dedup.ngram)
        index = self._snapshots.signatures(parent)
        row_of = {doc_id: i for i, doc_id in enumerate(index.column("id").to_pylist())}
        matrix = _signature_matrix(index.column("minhash"), dedup.num_perm)
        rows = [row_of[doc_id] for doc_id in carried.column("id").to_pylist()]
        return matrix[np.asarray(rows, dtype=np.int64)] if rows else matrix[:0]

    @staticmethod
    def _rank(table: pa.Table) -> npt.NDArray[np.int64]:
        """Representative preference: published before, then earliest fetched, longest, id."""
        fetched = table.column("fetched_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
        length = pc.utf8_length(table.column("text")).to_numpy(zero_copy_only=False)
        ids = np.asarray(table.column("id").to_pylist(), dtype=object)
        id_order = np.argsort(np.argsort(ids, kind="stable"), kind="stable")
        from_parent = table.column("from_parent").to_numpy(zero_copy_only=False)
        order = np.lexsort((id_order, -length, fetched, ~from_parent))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank

    @staticmethod
    def _assign_splits(
        table: pa.Table,
        labels: npt.NDArray[np.int64],
        rank: npt.NDArray[np.int64],
        ids: npt.NDArray[np.object_],
        salt: str,
        spec: JobSpec,
    ) -> list[str]:
        prior = table.column("prior_split").to_pylist()
        inherited: dict[int, str] = {}
        for i in np.argsort(rank, kind="stable").tolist():
            if prior[i] is not None:
                inherited.setdefault(int(labels[i]), prior[i])
        group_by = spec.splits.group_by
        domains = table.column("domain").to_pylist()
        out = []
        for i in range(len(table)):
            if prior[i] is not None:
                out.append(prior[i])
            elif int(labels[i]) in inherited:
                out.append(inherited[int(labels[i])])
            else:
                key = {"url": ids[i], "domain": domains[i], "cluster": ids[labels[i]]}[group_by]
                out.append(assign(key, salt, spec.splits))
        return out

    @staticmethod
    def _changes(final: pa.Table, parent_hashes: dict[str, str]) -> Changes:
        added = changed = unchanged = 0
        ids = final.column("id").to_pylist()
        for doc_id, digest in zip(ids, final.column("content_sha256").to_pylist(), strict=True):
            before = parent_hashes.get(doc_id)
            if before is None:
                added += 1
            elif before == digest:
                unchanged += 1
            else:
                changed += 1
        removed = len(set(parent_hashes) - set(ids))
        return Changes(added=added, removed=removed, changed=changed, unchanged=unchanged)

    # ---- files -----------------------------------------------------------------------

    def _write_shards(
        self, prefix: str, final: pa.Table, spec: JobSpec
    ) -> tuple[list[FileEntry], dict[str, SplitInfo]]:
        rng = np.random.default_rng(spec.shards.shuffle_seed)
        avg_row = max(1, final.nbytes // max(1, final.num_rows))
        row_group = max(1, spec.shards.row_group_bytes // avg_row)
        splits = np.asarray(final.column("split").to_pylist(), dtype=object)
        files: list[FileEntry] = []
        info: dict[str, SplitInfo] = {}
        for split in SPLITS:
            rows = np.flatnonzero(splits == split)
            part = final.take(pa.array(rng.permutation(rows)))
            # An empty split gets no file: loaders (Hugging Face `datasets`) fail on empty shards.
            shards = math.ceil(part.nbytes / spec.shards.max_bytes) if part.num_rows else 0
            per_shard = math.ceil(part.num_rows / shards) if part.num_rows else 0
            for i in range(shards):
                path = f"data/{split}-{i:05d}-of-{shards:05d}.parquet"
                chunk = part.slice(i * per_shard, per_shard)
                files.append(
                    self._write(prefix, path, split, chunk.cast(SNAPSHOT_SCHEMA), row_group)
                )
            info[split] = SplitInfo(rows=part.num_rows, shards=shards)
        return files, info

    def _write_index(self, prefix: str, final: pa.Table, sigs: npt.NDArray[np.uint32]) -> FileEntry:
        index = pa.table(
            {
                "id": final.column("id"),
                "minhash": pa.array(list(sigs), pa.list_(pa.uint32())),
            },
            schema=_INDEX_SCHEMA,
        )
        return self._write(prefix, SIGNATURES, None, index, None)

    def _write(
        self, prefix: str, path: str, split: str | None, table: pa.Table, row_group: int | None
    ) -> FileEntry:
        full = f"{prefix}/{path}"
        size = self._store.write_parquet(full, table, row_group_size=row_group)
        return FileEntry(
            path=path, split=split, rows=table.num_rows, bytes=size, sha256=self._store.sha256(full)
        )


def _latest_per_url(table: pa.Table) -> pa.Table:
    """One staged row per URL (the most recent) when several jobs fetched the same page."""
    urls = table.column("url").to_pylist()
    if len(set(urls)) == len(urls):
        return table
    fetched = table.column("fetched_at").cast(pa.int64()).to_pylist()
    best: dict[str, int] = {}
    for i, (url, when) in enumerate(zip(urls, fetched, strict=True)):
        if url not in best or when >= fetched[best[url]]:
            best[url] = i
    return table.take(pa.array(sorted(best.values())))
