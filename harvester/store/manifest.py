"""The snapshot manifest: what a version contains and how it was made. Written last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class FileEntry(_Model):
    """One file of a snapshot, relative to the version directory."""

    path: str
    split: str | None
    """`train`/`validation`/`test` for data shards, None for the index files."""
    rows: int
    bytes: int
    sha256: str


class SplitInfo(_Model):
    """Rows and shards of one split."""

    rows: int
    shards: int


class Changes(_Model):
    """How this version differs from its parent, in documents."""

    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    """Published documents that changed split: they became near duplicates of a document
    published earlier in another split, and joined its split (`docs/dataset-policy.md`)."""


class Leakage(_Model):
    """The leakage check's figures; a committed version has zero in the first three."""

    cross_split_near_duplicates: int
    cross_split_exact: int
    cross_split_urls: int
    test_13gram_in_train: float
    """Share of the test split's 13-grams (hash-sampled) that occur in train."""
    validation_13gram_in_train: float | None = None
    """The same for validation; None in versions built before it was measured."""
    related_pairs: int = 0
    """Pairs of documents kept in one split for their 13-gram overlap (`splits.overlap`)."""


class DedupReport(_Model):
    """What deduplication did and with which parameters."""

    threshold: float
    num_perm: int
    ngram: int
    bands: int
    rows_per_band: int
    action: str
    exact_duplicates: int
    near_duplicates: int
    clusters_with_duplicates: int
    verified_pairs: int
    """Pairs whose exact Jaccard reached the threshold (union-find edges)."""


class Manifest(_Model):
    """`datasets/<name>/v<N>/manifest.json`."""

    format_version: int = FORMAT_VERSION
    dataset: str
    version: int
    parent_version: int | None
    created_at: datetime
    jobs: list[str]
    spec: dict[str, Any]
    schema_: dict[str, str] = Field(alias="schema")
    files: list[FileEntry]
    splits: dict[str, SplitInfo]
    split_salt: str
    shuffle_seed: int
    stats: dict[str, int]
    changes: Changes
    dedup: DedupReport
    leakage: Leakage

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
