"""The snapshot manifest: what a version contains and how it was made. Written last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, use_attribute_docstrings=True)


class FileEntry(_Model):
    """One file of a snapshot, relative to the version directory."""

    path: str
    """Path relative to the version directory, e.g. `data/train-00000-of-00002.parquet`."""
    split: str | None
    """`train`/`validation`/`test` for data shards, None for the index files."""
    rows: int
    """Rows (documents) in the file."""
    bytes: int
    """Size in bytes."""
    sha256: str
    """Hex sha256 of the file's bytes (the download route's ETag)."""


class SplitInfo(_Model):
    """Rows and shards of one split."""

    rows: int
    """Documents in the split."""
    shards: int
    """Parquet shards of the split."""


class Changes(_Model):
    """How this version differs from its parent, in documents."""

    added: int = 0
    """Documents new in this version."""
    removed: int = 0
    """Documents of the parent that are gone (404/410, or now dropped)."""
    changed: int = 0
    """Documents whose text changed since the parent."""
    unchanged: int = 0
    """Documents carried over unchanged."""
    moved: int = 0
    """Published documents that changed split: they became near duplicates of a document
    published earlier in another split, and joined its split (`docs/dataset-policy.md`)."""


class Leakage(_Model):
    """The leakage check's figures; a committed version has zero in the first three."""

    cross_split_near_duplicates: int
    """Near-duplicate pairs found in two different splits."""
    cross_split_exact: int
    """Exact duplicates (same text hash) found in two different splits."""
    cross_split_urls: int
    """URLs found in two different splits."""
    test_13gram_in_train: float
    """Share of the test split's 13-grams (hash-sampled) that occur in train."""
    validation_13gram_in_train: float | None = None
    """The same for validation; None in versions built before it was measured."""
    related_pairs: int = 0
    """Pairs of documents kept in one split for their 13-gram overlap (`splits.overlap`)."""


class DedupReport(_Model):
    """What deduplication did and with which parameters."""

    threshold: float
    """Jaccard threshold used."""
    num_perm: int
    """MinHash permutations per signature."""
    ngram: int
    """Words per shingle."""
    bands: int
    """LSH bands (chosen for the threshold by datasketch's optimiser)."""
    rows_per_band: int
    """Signature rows per LSH band."""
    action: str
    """`remove` (duplicates dropped) or `keep` (marked by `cluster_id`)."""
    exact_duplicates: int
    """Documents dropped (or marked) as exact duplicates of another."""
    near_duplicates: int
    """Documents dropped (or marked) as near duplicates of another."""
    clusters_with_duplicates: int
    """Clusters with more than one document."""
    verified_pairs: int
    """Pairs whose exact Jaccard reached the threshold (union-find edges)."""


class Manifest(_Model):
    """`datasets/<name>/v<N>/manifest.json`."""

    format_version: int = FORMAT_VERSION
    """Version of this manifest format."""
    dataset: str
    """Dataset name."""
    version: int
    """This version's number (1, 2, …)."""
    parent_version: int | None
    """The version this one was built on, or null for the first."""
    created_at: datetime
    """When the version was committed (UTC)."""
    jobs: list[str]
    """Ids of the jobs whose pages the version was built from."""
    spec: dict[str, Any]
    """The job spec the version was built with, defaults filled in."""
    schema_: dict[str, str] = Field(alias="schema")
    """Column name → Arrow type of the data shards."""
    files: list[FileEntry]
    """Every data and index file with its rows, size and sha256."""
    splits: dict[str, SplitInfo]
    """Rows and shards per split."""
    split_salt: str
    """Salt of the split hash, fixed at the first version so assignment is stable."""
    shuffle_seed: int
    """Seed of the row order within each split."""
    stats: dict[str, int]
    """The build's counters (pipeline drops, PII found, dedup), by slash-path name."""
    changes: Changes
    """How this version differs from its parent."""
    dedup: DedupReport
    """What deduplication did and with which parameters."""
    leakage: Leakage
    """The leakage check's figures."""

    def to_json(self) -> bytes:
        """Pretty JSON with the documented key names."""
        return self.model_dump_json(by_alias=True, indent=2).encode()

    @property
    def rows(self) -> int:
        """Documents in the snapshot."""
        return sum(s.rows for s in self.splits.values())

    @property
    def data_bytes(self) -> int:
        """Bytes of the data shards."""
        return sum(f.bytes for f in self.files if f.split is not None)
