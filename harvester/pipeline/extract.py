"""Main text and metadata with trafilatura, under a per-page time budget.

trafilatura's `deduplicate` cache is process-global (a page's text would depend on the pages
extracted before it in the same worker), so it stays off: dedup is our own stage. Pages that
blow half the page's time budget (a 1.2 MB table of contents takes trafilatura 9-16 s) are
extracted by a cheap selectolax pass instead and counted, rather than dropped.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from types import FrameType
from urllib.parse import urlsplit

import trafilatura
from lxml.etree import _Element
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree
from selectolax.lexbor import LexborHTMLParser
from selectolax.lexbor import LexborNode as Node
from trafilatura.settings import set_date_params
from trafilatura.xml import xmltotxt

from harvester.pipeline.furniture import VERSION as FURNITURE
from harvester.pipeline.furniture import strip_furniture, tidy
from harvester.spec import Extraction

_FALLBACK_DROP = "script, style, noscript, template, nav, header, footer, aside, form, svg"
_NOT_PROSE = "pre, table"
_BLOCK_PARENTS = {"body", "item", "quote", "cell"}
"""Where trafilatura's `<code>` is a code block rather than inline code (a paragraph's)."""


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
    prose: str
    """`text` without its code blocks and tables: what style and repetition rules judge."""


def fingerprint(options: Extraction) -> str:
    """Extractor version plus a hash of the options that change its output."""
    relevant = options.model_dump(
        include={"markdown", "fast", "include_comments", "include_tables", "extensive_date_search"}
    )
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
    engine = f"{options.engine}-{version(options.engine)}"
    return f"{engine}+furniture{FURNITURE}+{digest}"


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


def _main(html: str) -> tuple[LexborHTMLParser, Node | None]:
    tree = LexborHTMLParser(html)
    for node in tree.css(_FALLBACK_DROP):
        node.decompose()
    return tree, tree.css_first("main, article") or tree.body


def visible_text(html: str) -> str:
    """The visible text of `main`/`article` (or body) minus page furniture."""
    return _visible(_main(html)[1])


def fallback(html: str, method: str) -> Extracted:
    """The cheap extraction: `visible_text`, and that without code blocks and tables."""
    tree, root = _main(html)
    title_node = tree.css_first("title")
    text = _visible(root)
    if root is not None:
        for node in root.css(_NOT_PROSE):
            node.decompose()
    return Extracted(
        text=text,
        markdown=None,
        title=title_node.text(strip=True) if title_node is not None else None,
        author=None,
        published=None,
        sitename=None,
        language_hint=None,
        method=method,
        prose=_visible(root),
    )


def _visible(root: Node | None) -> str:
    text = root.text(separator="\n", strip=True) if root is not None else ""
    return "\n".join(line for line in (line.strip() for line in text.splitlines()) if line)


_SPACES = re.compile(r"\s+")
_BLOCK_TAGS = {"p", "head", "item", "list", "quote", "cell", "row", "table", "div"}
"""trafilatura's block elements: the white space that starts them is the source's indent."""


def _reflow(body: _Element) -> _Element:
    """trafilatura keeps the HTML source's line breaks inside paragraphs; a line of text is a
    paragraph (what the line rules judge, what a reader sees), so runs of white space outside
    code collapse to one space. A body of one paragraph is trafilatura's baseline, which
    joins the page's text nodes with line breaks: those are kept."""
    if len(body) == 1 and body[0].tag == "p":
        return body
    for node in body.iter():
        if node.tag == "code" or any(a.tag == "code" for a in node.iterancestors()):
            if node.tail and node.tag == "code":
                node.tail = _SPACES.sub(" ", node.tail)
            continue
        block = node.tag in _BLOCK_TAGS
        if node.text:
            node.text = _SPACES.sub(" ", node.text)
            node.text = node.text.lstrip() if block else node.text
        if node.tail:
            node.tail = _SPACES.sub(" ", node.tail)
            node.tail = node.tail.strip() or None if block else node.tail
    return body


def _is_block(node: _Element) -> bool:
    """A table, or a `<code>` that stands as a block (trafilatura also marks inline code)."""
    parent = node.getparent()
    if node.tag == "table" or parent is None:
        return bool(node.tag == "table")
    return bool(
        parent.tag == "body"
        or (parent.tag in _BLOCK_PARENTS and "\n" in "".join(node.itertext()).strip())
    )


def _prose(body: _Element) -> _Element:
    """A copy of trafilatura's body without code blocks and tables."""
    prose = copy.deepcopy(body)
    for node in [node for node in prose.iter("table", "code") if _is_block(node)]:
        parent = node.getparent()
        if parent is None:  # inside a block removed before it
            continue
        previous = node.getprevious()
        if node.tail:  # text after the removed block belongs to what precedes it
            if previous is not None:
                previous.tail = (previous.tail or "") + node.tail
            else:
                parent.text = (parent.text or "") + node.tail
        parent.remove(node)
    return prose


@dataclass(frozen=True)
class _Head:
    title: str
    headings: list[str]
    lang: str | None


def _head(html: str) -> _Head:
    """What the page says of itself: its `<title>`, its headings 1 and its language tag
    (`<html lang>`, or the Content-Language or og:locale meta)."""
    tree = LexborHTMLParser(html)
    node = tree.css_first("title")
    root = tree.css_first("html")
    meta = tree.css_first("meta[http-equiv='content-language' i], meta[property='og:locale']")
    lang = (root.attributes.get("lang") if root is not None else None) or (
        meta.attributes.get("content") if meta is not None else None
    )
    return _Head(
        title=" ".join(node.text().split()) if node is not None else "",
        headings=[h.text(strip=True) for h in tree.css("h1")],
        lang=lang.strip() if lang and lang.strip() else None,
    )


def _title(found: str | None, head: _Head) -> str | None:
    """trafilatura's title when the page's `<title>` or a heading 1 says it; otherwise the
    `<title>`: trafilatura takes a heading with a title class, which is DocBook's "Note" or
    "Warning" box as often as the page's title."""
    if found and (found in head.title or found in head.headings):
        return found
    return head.title or found or None


# " | ", em dash, en dash, " - ", " :: ", middle dot
_TITLE_SEPARATORS = (" | ", " \u2014 ", " \u2013 ", " - ", " :: ", " \u00b7 ")


def _sitename(found: str | None, title: str, url: str) -> str | None:
    """The site's name: trafilatura's (og:site_name, publisher metadata) unless it is only the
    address it falls back to, else what follows the `<title>`'s last separator ("Growing
    Tomatoes | Riverbend Field Notes"), else None: an address is not a name."""
    parts = urlsplit(url)
    addresses = {parts.netloc.lower(), (parts.hostname or "").removeprefix("www.")}
    if found and found.lower().removeprefix("www.") not in addresses:
        return found
    for separator in _TITLE_SEPARATORS:
        if separator in title:
            tail = title.rsplit(separator, 1)[1].strip()
            if tail and tail.lower() not in addresses:
                return tail
    return None


def _resiliparse(html: str, options: Extraction, *, use_budget: bool) -> Extracted:
    """Resiliparse's main-content text (DCLM's extractor): no markdown, no byline or date."""
    skip = [] if options.include_tables else ["table"]
    try:
        with _time_budget(options.time_budget_s / 2) if use_budget else contextlib.nullcontext():
            tree = HTMLTree.parse(html)
            text, prose = (
                extract_plain_text(
                    tree,
                    main_content=True,
                    alt_texts=False,
                    comments=options.include_comments,
                    skip_elements=skip + extra,
                )
                for extra in ([], ["pre", "table"])
            )
    except _BudgetExceeded:
        return fallback(html, "fallback/timeout")
    head = _head(html)
    title = _title(head.headings[0] if head.headings else None, head)
    return Extracted(
        text=tidy(text.strip(), title),
        prose=tidy(prose.strip(), title),
        markdown=None,
        title=title,
        author=None,
        published=None,
        sitename=None,
        language_hint=head.lang,
        method="resiliparse",
    )


def extract(html: str, url: str, options: Extraction, *, use_budget: bool = True) -> Extracted:
    """Main text (and markdown when asked) plus metadata; never raises on a bad page.
    trafilatura gets half the page's budget: the fallback and the other stages must fit in
    the rest before the pool kills the page's process."""
    html = strip_furniture(html)
    if options.engine == "resiliparse":
        return _resiliparse(html, options, use_budget=use_budget)
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
        return Extracted("", None, None, None, None, None, None, "trafilatura", "")
    body = _reflow(doc.body)
    markdown = xmltotxt(body, True).strip() if options.markdown else None
    head = _head(html)
    title = _title(doc.title, head)
    return Extracted(
        text=tidy(xmltotxt(body, False).strip(), title),
        prose=tidy(xmltotxt(_prose(body), False).strip(), title),
        markdown=tidy(markdown, None) if markdown else None,  # a markdown page keeps its "# title"
        title=title,
        author=doc.author,
        published=doc.date,
        sitename=_sitename(doc.sitename, head.title, url),
        language_hint=head.lang or doc.language,
        method="trafilatura",
    )
