"""Staging parts: the hand-over from the crawl phase to the build phase, owned by neither.

One row per fetched page: what the fetch returned (status, validators, encoding, the raw
body's sha256 but not the body: PII is scrubbed before anything is written), the pipeline's
verdict (`dropped` with the stage and reason, or the document's columns) and the MinHash
signature, so the build never recomputes it. The crawl writes parts (`write_part`); the build
reads them by column name.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import pyarrow as pa

from harvester.pipeline.document import DOCUMENT_SCHEMA
from harvester.store.blob import BlobStore

_FETCH_FIELDS = [
    ("job_id", pa.string()),
    ("url", pa.string()),
    ("final_url", pa.string()),
    ("depth", pa.int32()),
    ("status", pa.int16()),
    ("content_type", pa.string()),
    ("etag", pa.string()),
    ("last_modified", pa.string()),
    ("fetched_at", pa.timestamp("us", tz="UTC")),
    ("proxy", pa.string()),
    ("encoding", pa.string()),
    ("dropped", pa.string()),
]
STAGING_SCHEMA = pa.schema(
    [
        *_FETCH_FIELDS,
        *(f for f in DOCUMENT_SCHEMA if f.name not in ("url", "fetched_at")),
        ("minhash", pa.list_(pa.uint32())),
    ]
)


def staging_prefix(job_id: str) -> str:
    """Where a job's staging parts live in the blob store."""
    return f"staging/{job_id}"


def write_part(
    store: BlobStore, job_id: str, rows: Sequence[Mapping[str, object]]
) -> tuple[str, int]:
    """Write rows of `STAGING_SCHEMA` as one part; returns (path, bytes)."""
    table = pa.Table.from_pylist(list(rows), schema=STAGING_SCHEMA)
    path = f"{staging_prefix(job_id)}/part-{uuid.uuid4().hex}.parquet"
    return path, store.write_parquet(path, table)
