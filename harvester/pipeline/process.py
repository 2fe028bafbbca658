"""The crawl-phase pipeline for one page: extract → quality → PII → signature.

Runs in a worker process (`harvester.cpu`), so it takes and returns plain picklable values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from harvester.pipeline.document import Document, parse_date
from harvester.pipeline.extract import extract, fingerprint, visible_text
from harvester.pipeline.minhash import signatures
from harvester.pipeline.pii import PiiScrubber, page_regions, url_pii
from harvester.pipeline.quality import judge, measure
from harvester.pipeline.text import content_hash
from harvester.spec import Pipeline


@dataclass(frozen=True)
class Page:
    """A fetched HTML page handed to the pipeline."""

    url: str
    domain: str
    html: str
    raw_sha256: str
    fetched_at: datetime


@dataclass(frozen=True)
class Processed:
    """The pipeline's verdict on a page: a document with its signature, or a drop reason."""

    document: Document | None
    signature: npt.NDArray[np.uint32] | None
    dropped: str | None  # e.g. `quality/too_short`, `extract/empty`, `pii/card`
    counters: dict[str, int] = field(default_factory=dict)


MAX_ELEMENTS = 250_000
"""Tags a page may hold (counted as `<`, before any parse): lexbor's time grows with the
square of unclosed nesting, and the largest page of the Python, PostgreSQL and Git docs
(Python's contents.html, 2.5 MB) holds 98,000."""


def too_complex(html: str) -> Processed | None:
    """The verdict on a page too large for any parser to read within its budget, or None."""
    if html.count("<") <= MAX_ELEMENTS:
        return None
    return Processed(None, None, "extract/too_complex", {"extract/too_complex": 1})


def process_page(page: Page, pipeline: Pipeline) -> Processed:
    """Run every crawl-phase stage on one page; each stage counts what it did."""
    counters: Counter[str] = Counter()
    # Pre-pass: trafilatura keeps a subset of the visible text, so a page whose whole visible
    # text is under the word minimum cannot pass; judge it at selectolax speed (~100x faster).
    visible = visible_text(page.html)
    if len(visible.split()) < pipeline.quality.min_words:
        counters["extract/prepass"] += 1
        counters["quality/dropped/too_short"] += 1
        return Processed(None, None, "quality/too_short", dict(counters))
    extracted = extract(page.html, page.url, pipeline.extract)
    counters[f"extract/{extracted.method}"] += 1
    if not extracted.text.strip():
        counters["extract/empty"] += 1
        return Processed(None, None, "extract/empty", dict(counters))

    signals = measure(extracted.text, extracted.prose)
    rule = judge(signals, pipeline.quality)
    if rule is not None:
        counters[f"quality/dropped/{rule}"] += 1
        return Processed(None, None, f"quality/{rule}", dict(counters))
    counters["quality/kept"] += 1

    scrubber = PiiScrubber(pipeline.pii, page_regions(page.url, extracted.language_hint))
    scrubbed = scrubber.scrub(extracted.text)
    for kind, count in scrubbed.counts.items():
        if count:
            counters[f"pii/{kind}"] += count
    if scrubbed.drop is not None:
        counters[f"pii/dropped/{scrubbed.drop}"] += 1
        return Processed(None, None, f"pii/{scrubbed.drop}", dict(counters))
    markdown = scrubber.scrub(extracted.markdown).text if extracted.markdown else None
    in_url = url_pii(page.url, scrubber)
    if in_url:
        counters["pii/url"] += 1

    dedup = pipeline.dedup
    document = Document(
        url=page.url,
        domain=page.domain,
        title=scrubber.scrub(extracted.title).text if extracted.title else None,
        author=scrubber.scrub(extracted.author).text if extracted.author else None,
        sitename=extracted.sitename,
        text=scrubbed.text,
        markdown=markdown,
        fetched_at=page.fetched_at,
        published_at=parse_date(extracted.published),
        content_sha256=content_hash(scrubbed.text),
        raw_sha256=page.raw_sha256,
        extractor=fingerprint(pipeline.extract),
        extraction_method=extracted.method,
        pii_counts={**scrubbed.counts, "url": in_url},
        signals=signals,
    )
    signature = signatures([scrubbed.text], dedup.num_perm, dedup.ngram)[0]
    return Processed(document, signature, None, dict(counters))
