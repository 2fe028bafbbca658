"""`Document`: one page after the crawl-phase pipeline, and its Arrow schema."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from harvester.pipeline.pii import KINDS
from harvester.pipeline.quality import Signals

PII_COUNTS = pa.struct([(kind, pa.int32()) for kind in (*KINDS, "url")])
"""Values found (and masked or kept) per kind in the text, and `url`: values found in the
page's URL, which is kept as fetched (it is the document's identity): a flag to filter on."""
QUALITY_FIELDS = [
    pa.field(f"quality_{name}", pa.int32() if name == "word_count" else pa.float32())
    for name in Signals.__dataclass_fields__
    if name not in ("language", "language_score")
]

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("domain", pa.string()),
        ("title", pa.string()),
        ("author", pa.string()),
        ("sitename", pa.string()),
        ("text", pa.string()),
        ("markdown", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("published_at", pa.date32()),
        ("content_sha256", pa.string()),
        ("raw_sha256", pa.string()),
        ("extractor", pa.string()),
        ("extraction_method", pa.string()),
        ("pii_counts", PII_COUNTS),
        *QUALITY_FIELDS,
    ]
)


def document_id(url: str) -> str:
    """The stable id of the document at a canonical URL: it survives every later version."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def parse_date(value: str | None) -> date | None:
    """trafilatura's ISO date (or datetime) as a date; anything else is unknown."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value[:10]).date()
    except ValueError:
        return None


@dataclass(frozen=True)
class Document:
    """A page that passed extraction, quality and PII: ready to stage."""

    url: str
    domain: str
    title: str | None
    author: str | None
    sitename: str | None
    text: str
    markdown: str | None
    fetched_at: datetime
    published_at: date | None
    content_sha256: str
    raw_sha256: str
    extractor: str
    extraction_method: str
    pii_counts: dict[str, int]
    signals: Signals

    def row(self) -> dict[str, Any]:
        """The document as a row of `DOCUMENT_SCHEMA`."""
        signals = self.signals.as_columns()
        return {
            "id": document_id(self.url),
            "url": self.url,
            "domain": self.domain,
            "title": self.title,
            "author": self.author,
            "sitename": self.sitename,
            "text": self.text,
            "markdown": self.markdown,
            "language": signals.pop("quality_language"),
            "language_score": signals.pop("quality_language_score"),
            "fetched_at": self.fetched_at,
            "published_at": self.published_at,
            "content_sha256": self.content_sha256,
            "raw_sha256": self.raw_sha256,
            "extractor": self.extractor,
            "extraction_method": self.extraction_method,
            "pii_counts": self.pii_counts,
            **signals,
        }
