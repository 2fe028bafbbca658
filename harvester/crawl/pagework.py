"""What the CPU pool does with one fetched page: the pipeline, and its links (parsing up to
10 MB of HTML must not hold the event loop that times requests and serves the API)."""

from __future__ import annotations

from harvester.crawl.links import extract_links
from harvester.pipeline.process import Page, Processed, process_page
from harvester.spec import Pipeline


def work_page(
    page: Page, pipeline: Pipeline, links_from: str | None
) -> tuple[Processed, list[str]]:
    """The pipeline's verdict on `page` and, when `links_from` (its final URL) is given, the
    links it holds."""
    links = extract_links(page.html, links_from) if links_from is not None else []
    return process_page(page, pipeline), links
