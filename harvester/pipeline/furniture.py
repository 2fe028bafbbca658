"""Page furniture that extractors keep and a training set does not want, removed from the
HTML before extraction so that neither text nor title carries it: permalink anchors (Sphinx's
"¶", "§" and "#" links, icon-only heading anchors), copy buttons, "Edit on GitHub", "Report a
bug" and "Show source" links, skip links and cookie notices."""

from __future__ import annotations

import re
from html import escape

from selectolax.lexbor import LexborHTMLParser, LexborNode

VERSION = "3"
"""Changes whenever what is removed changes: part of the extractor's fingerprint."""

_BY_MARKUP = ", ".join(
    [
        # heading permalinks of Sphinx, MkDocs, Hugo/Jekyll themes, GitHub, anchor.js
        "a.headerlink", "a.anchor", "a.anchorjs-link", "a.header-anchor", "a.heading-anchor",
        "a.permalink", "a.hash-link", "a.toclink",
        # copy-to-clipboard buttons (sphinx-copybutton, highlight.js, Docusaurus)
        "button.copybtn", ".copybutton", "button.copy-button", "button.clipboard",
        # cookie notices of the common consent tools and themes
        "#cookie-banner", ".cookie-banner", "#cookie-notice", ".cookie-notice",
        "#cookie-consent", ".cookie-consent", "#cookieConsent", ".cc-window", ".cc-banner",
        "#onetrust-banner-sdk", "#onetrust-consent-sdk", "#CybotCookiebotDialog",
        "[aria-label='cookieconsent']", "[role=dialog][aria-label*=cookie i]",
    ]
)  # fmt: skip
_GLYPHS = {"", "¶", "§", "#", "🔗", "⚓", "link", "permalink"}
"""What a permalink anchor (a link to a fragment of the same page) shows."""
_ICONS = {"¶", "§", "🔗", "⚓"}
"""What a link shows that only points somewhere else, whatever its target (PostgreSQL's
release notes link each item to its commit with a "§")."""
WIDGET = re.compile(
    r"(edit (this page|on github|on gitlab|on bitbucket|source)|suggest an edit|"
    r"report (a bug|an issue|a problem)|show source|view (page )?source|"
    r"skip to (the )?(main )?content|skip navigation|jump to navigation)",
    re.IGNORECASE,
)
"""The whole text of a widget link or button."""
COPY_BUTTON = re.compile(r"copy( to clipboard| code)?|copied!?", re.IGNORECASE)
"""The whole text of a copy button; a link saying "COPY" is PostgreSQL's SQL command."""


def strip_furniture(html: str) -> str:
    """The page without its furniture (the same page if it has none), and with definition
    lists that hold code or tables turned into blocks."""
    tree = LexborHTMLParser(html)
    found = _unlist_definitions(tree) | _code_in_pre(tree)
    for node in tree.css(_BY_MARKUP):
        node.decompose()
        found = True
    for node in tree.css("a, button"):
        text = node.text(strip=True)
        href = node.attributes.get("href") or ""
        if (
            text in _ICONS
            or (href.startswith("#") and text in _GLYPHS)
            or WIDGET.fullmatch(text)
            or (node.tag == "button" and COPY_BUTTON.fullmatch(text))
        ):
            node.decompose()
            found = True
    return tree.html or html if found else html


def _code_in_pre(tree: LexborHTMLParser) -> bool:
    """Make what a `<pre>` holds the text of a `<code>` unless it already is: trafilatura tells code
    blocks by that (or a highlighter's class), and reads any other `<pre>`, such as DocBook's
    SQL synopses, as a paragraph whose lines it joins."""
    found = False
    for pre in tree.css("pre"):
        child = pre.child
        while child is not None and child.tag == "-text" and not (child.text() or "").strip():
            child = child.next
        if child is not None and child.tag == "code" and child.next is None:
            continue
        pre.inner_html = f"<code>{escape(pre.text(deep=True))}</code>"  # code is plain text
        found = True
    return found


_BLOCKS = ", ".join(f"dd > {tag}" for tag in ("p", "pre", "div", "table", "ul", "ol", "dl"))


def _unlist_definitions(tree: LexborHTMLParser) -> bool:
    """Turn each `<dl>` whose definitions hold blocks (paragraphs, code, tables, lists) into
    paragraphs (`dt`) and blocks (`dd`): trafilatura reads a list item as one line of text,
    so the code of an API reference entry (Sphinx's `dl.py`) would lose its lines and its
    fences. Innermost first, as rewriting a list re-parses what it holds."""
    found = False
    for dl in reversed(tree.css("dl")):
        if dl.css_first(_BLOCKS) is None:
            continue
        for item in dl.css("dt, dd"):
            if item.parent is not None and item.parent.mem_id == dl.mem_id:
                _rename(tree, item, "p" if item.tag == "dt" else "div")
        _rename(tree, dl, "div")
        found = True
    return found


def _rename(tree: LexborHTMLParser, node: LexborNode, tag: str) -> None:
    block = tree.create_node(tag)
    block.inner_html = node.inner_html or ""
    node.replace_with(block)


_SEPARATORS = {"·", "•", "|", "/"}
"""A line of only one of these held what stood between widgets that are gone."""


def tidy(text: str, title: str | None) -> str:
    """Extracted `text` without lines left as separators of removed widgets, and without
    its first line when that line only repeats the title (an extracted heading 1; markdown's
    `#`, emphasis and code marks are ignored in comparing)."""
    lines = [line.rstrip() for line in text.split("\n") if line.strip() not in _SEPARATORS]
    if title and lines and _plain(lines[0]) == _plain(title):
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def _plain(line: str) -> str:
    return " ".join(re.sub(r"^#+\s*|[`*_]", "", line.strip()).split()).casefold()
