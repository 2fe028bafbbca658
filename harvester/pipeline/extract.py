"""Main text and metadata with trafilatura, under a per-page time budget.

trafilatura's `deduplicate` cache is process-global (a page's text would depend on the pages
extracted before it in the same worker), so it stays off: dedup is our own stage. Pages that
blow half the page's time budget (a 1.2 MB table of contents takes trafilatura 9-16 s) are
extracted by a cheap selectolax pass instead and counted, rather than dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import trafilatura
from selectolax.lexbor import LexborHTMLParser
from trafilatura.settings import set_date_params
from trafilatura.xml import xmltotxt

from harvester.pipeline.furniture import VERSION as FURNITURE
from harvester.pipeline.furniture import strip_furniture, tidy
from harvester.spec import Extraction

_FALLBACK_DROP = "script, style, noscript, template, nav, header, footer, aside, form, svg"


@dataclass(frozen=True)
class Extracted:
    """What extraction found in one page."""

    text: str
    markdown: str | None
    title: str | None
    author: str | None
    published: str | None
    sitename: str | None
    language_hint: str | None
    method: str  # trafilatura | fallback/timeout | fallback/error


def fingerprint(options: Extraction) -> str:
    """Extractor version plus a hash of the options that change its output."""
    relevant = options.model_dump(
        include={"markdown", "fast", "include_comments", "include_tables", "extensive_date_search"}
    )
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
    return f"trafilatura-{trafilatura.__version__}+furniture{FURNITURE}+{digest}"


class _BudgetExceeded(BaseException):
    """A BaseException: trafilatura catches `Exception` internally and would swallow it."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _BudgetExceeded


@contextlib.contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    # Runs in a pool worker's main thread, where SIGPROF is ours to use. CPU time, like the
    # pool's budget for the whole page (`harvester.cpu`).
    previous = signal.signal(signal.SIGPROF, _on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def fallback(html: str, method: str) -> Extracted:
    """The cheap extraction: visible text of `main`/`article` (or body) minus page furniture."""
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    for node in tree.css(_FALLBACK_DROP):
        node.decompose()
    root = tree.css_first("main, article") or tree.body
    text = root.text(separator="\n", strip=True) if root is not None else ""
    lines = [line.strip() for line in text.splitlines()]
    return Extracted(
        text="\n".join(line for line in lines if line),
        markdown=None,
        title=title_node.text(strip=True) if title_node is not None else None,
        author=None,
        published=None,
        sitename=None,
        language_hint=None,
        method=method,
    )


def extract(html: str, url: str, options: Extraction, *, use_budget: bool = True) -> Extracted:
    """Main text (and markdown when asked) plus metadata; never raises on a bad page.
    trafilatura gets half the page's budget: the fallback and the other stages must fit in
    the rest before the pool kills the page's process."""
    html = strip_furniture(html)
    try:
        with _time_budget(options.time_budget_s / 2) if use_budget else contextlib.nullcontext():
            doc = trafilatura.bare_extraction(
                html,
                url=url,
                fast=options.fast,
                include_comments=options.include_comments,
                include_tables=options.include_tables,
                include_formatting=options.markdown,
                deduplicate=False,
                with_metadata=True,
                date_extraction_params=set_date_params(options.extensive_date_search),
                output_format="python",
            )
    except _BudgetExceeded:
        return fallback(html, "fallback/timeout")
    except Exception:  # trafilatura/lxml choke on some pages: the fallback still reads them
        return fallback(html, "fallback/error")
    if not isinstance(doc, trafilatura.settings.Document) or doc.body is None:
        return Extracted("", None, None, None, None, None, None, "trafilatura")
    body = doc.body
    markdown = xmltotxt(body, True).strip() if options.markdown else None
    return Extracted(
        text=tidy(xmltotxt(body, False).strip(), doc.title),
        markdown=tidy(markdown, None) if markdown else None,  # a markdown page keeps its "# title"
        title=doc.title,
        author=doc.author,
        published=doc.date,
        sitename=doc.sitename,
        language_hint=doc.language,
        method="trafilatura",
    )
