"""Staging parts: the hand-over from the crawl phase to the build phase.

One row per fetched page: what the fetch returned (status, validators, encoding, the raw
body's sha256 but not the body: PII is scrubbed before anything is written), the pipeline's
verdict (`dropped` with the stage and reason, or the document's columns) and the MinHash
signature, so the build never recomputes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pyarrow as pa

from harvester.crawl.fetcher import FetchResult
from harvester.pipeline.document import DOCUMENT_SCHEMA
from harvester.pipeline.process import Processed
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


def _row(job_id: str, result: FetchResult, depth: int, processed: Processed) -> dict[str, object]:
    row: dict[str, object] = {
        "job_id": job_id,
        "url": result.url,
        "final_url": result.final_url,
        "depth": depth,
        "status": result.status,
        "content_type": result.content_type,
        "etag": result.etag,
        "last_modified": result.last_modified,
        "fetched_at": result.fetched_at,
        "proxy": result.proxy,
        "encoding": result.encoding,
        "dropped": processed.dropped,
    }
    if processed.document is not None and processed.signature is not None:
        row |= processed.document.row()
        row["minhash"] = processed.signature.tolist()
    return row


def write_part(
    store: BlobStore, job_id: str, pages: Sequence[tuple[FetchResult, int, Processed]]
) -> tuple[str, int]:
    """Write fetched pages (with depth and verdict) as one part; returns (path, bytes)."""
    table = pa.Table.from_pylist(
        [_row(job_id, result, depth, processed) for result, depth, processed in pages],
        schema=STAGING_SCHEMA,
    )
    path = f"{staging_prefix(job_id)}/part-{uuid.uuid4().hex}.parquet"
    return path, store.write_parquet(path, table)
