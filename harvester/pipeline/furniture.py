"""Page furniture that extractors keep and a training set does not want, removed from the
HTML before extraction so that neither text nor title carries it: permalink anchors (Sphinx's
"¶", "§" and "#" links, icon-only heading anchors), copy buttons, "Edit on GitHub", "Report a
bug" and "Show source" links, skip links and cookie notices."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

VERSION = "1"
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
_WIDGET = re.compile(
    r"(edit (this page|on github|on gitlab|on bitbucket|source)|suggest an edit|"
    r"report (a bug|an issue|a problem)|show source|view (page )?source|copy( to clipboard)?|"
    r"copied!?|skip to (the )?(main )?content|skip navigation|jump to navigation)",
    re.IGNORECASE,
)
"""The whole text of a widget link or button."""


def strip_furniture(html: str) -> str:
    """The page without its furniture (the same page if it has none)."""
    tree = LexborHTMLParser(html)
    found = False
    for node in tree.css(_BY_MARKUP):
        node.decompose()
        found = True
    for node in tree.css("a, button"):
        text = node.text(strip=True)
        href = node.attributes.get("href") or ""
        if (href.startswith("#") and text in _GLYPHS) or _WIDGET.fullmatch(text):
            node.decompose()
            found = True
    return tree.html or html if found else html


_SEPARATORS = {"·", "•", "|", "/"}
"""A line of only one of these held what stood between widgets that are gone."""


def tidy(text: str, title: str | None) -> str:
    """Extracted `text` without lines left as separators of removed widgets, and without
    its first line when that line only repeats the title (an extracted heading 1; markdown's
    `#`, emphasis and code marks are ignored in comparing)."""
    lines = [line for line in text.split("\n") if line.strip() not in _SEPARATORS]
    if title and lines and _plain(lines[0]) == _plain(title):
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def _plain(line: str) -> str:
    return " ".join(re.sub(r"^#+\s*|[`*_]", "", line.strip()).split()).casefold()
