"""Staging parts: fetched pages as Parquet, the hand-over from the crawl to the pipeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pyarrow as pa

from harvester.crawl.fetcher import FetchResult
from harvester.store.blob import BlobStore

STAGING_SCHEMA = pa.schema(
    [
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
        ("body", pa.large_binary()),
    ]
)


def staging_prefix(job_id: str) -> str:
    """Where a job's staging parts live in the blob store."""
    return f"staging/{job_id}"


def write_part(
    store: BlobStore, job_id: str, pages: Sequence[tuple[FetchResult, int]]
) -> tuple[str, int]:
    """Write fetched pages (with their depth) as one part; returns (relative path, bytes)."""
    table = pa.Table.from_pylist(
        [
            {
                "job_id": job_id,
                "url": r.url,
                "final_url": r.final_url,
                "depth": depth,
                "status": r.status,
                "content_type": r.content_type,
                "etag": r.etag,
                "last_modified": r.last_modified,
                "fetched_at": r.fetched_at,
                "proxy": r.proxy,
                "encoding": r.encoding,
                "body": r.body,
            }
            for r, depth in pages
        ],
        schema=STAGING_SCHEMA,
    )
    path = f"{staging_prefix(job_id)}/part-{uuid.uuid4().hex}.parquet"
    return path, store.write_parquet(path, table)
