"""Extracted text and titles without page furniture: permalink glyphs, copy and edit widgets,
skip links, cookie notices, and no title repeated as the first line; code stays code."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from harvester.pipeline.extract import extract
from harvester.spec import Extraction

PROSE = (
    "The harbour pilots guide every vessel through the narrow channel at dawn, when the tide "
    "is slack and the wind has not yet risen over the northern ridge. "
)
WIDGETS = ["¶", "§", "🔗", "Copy", "Edit on GitHub", "Report a bug", "Skip to main content",
           "We use cookies", "Show Source"]  # fmt: skip

PAGE = f"""<!doctype html><html lang="en"><head><title>Channel pilots</title></head><body>
<a class="skip-link" href="#main">Skip to main content</a>
<div id="cookie-banner"><p>We use cookies to improve your experience.</p>
<button>Accept</button></div>
<main id="main"><article>
<h1>Channel pilots<a class="headerlink" href="#pilots" title="Permalink">¶</a></h1>
<p><a href="https://github.com/example/docs/edit/main/pilots.md">Edit on GitHub</a></p>
<p>{PROSE * 4}</p>
<h2 id="tides">Tides<a href="#tides">§</a></h2>
<p>{PROSE * 3}</p>
<h2 id="gear">Gear<a class="anchor" href="#gear" aria-hidden="true"><svg></svg></a></h2>
<div class="highlight"><pre><code>pilot --board vessel --channel north
pilot --leave</code></pre>
<button class="copybtn" title="Copy to clipboard">Copy</button></div>
<p>{PROSE * 3}<a href="#gear">🔗</a></p>
<p><a href="/bugs">Report a bug</a> · <a href="_sources/pilots.txt">Show Source</a></p>
</article></main></body></html>"""


def test_widgets_and_permalinks_leave_text_and_title() -> None:
    found = extract(PAGE, "https://docs.example.org/pilots", Extraction(markdown=True))
    assert found.title == "Channel pilots"
    for text in (found.text, found.markdown or "", found.title or ""):
        for widget in WIDGETS:
            assert widget not in text, (widget, text[:300])
    assert "narrow channel at dawn" in found.text and "Tides" in found.text
    assert not found.text.startswith("Channel pilots")  # the title is not the first line
    assert "```\npilot --board vessel --channel north\npilot --leave\n```" in (found.markdown or "")
    assert "·" not in found.text  # the separator between two widget links went with them


def test_a_link_to_a_fragment_with_words_is_kept() -> None:
    page = PAGE.replace('<a href="#gear">🔗</a>', '<a href="#gear">see the gear list</a>')
    assert "see the gear list" in extract(page, "https://e.org/p", Extraction()).text


DOC_SITES = {
    "Sphinx (python3.11-doc)": ("/usr/share/doc/python3.11-doc/html/library", "*.html"),
    "DocBook (postgresql-doc-15)": ("/usr/share/doc/postgresql-doc-15/html", "sql-*.html"),
    "AsciiDoc (git-doc)": ("/usr/share/doc/git-doc", "git-*.html"),
}


@pytest.mark.parametrize("site", list(DOC_SITES))
def test_pages_of_each_doc_generator_come_out_clean(site: str) -> None:
    directory, pattern = DOC_SITES[site]
    pages = sorted(Path(directory).glob(pattern))
    if not pages:
        reason = f"{site} is not installed (Debian: python3.11-doc postgresql-doc-15 git-doc)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    for page in random.Random(3).sample(pages, min(15, len(pages))):
        found = extract(page.read_text(errors="replace"), f"http://docs.test/{page.name}",
                        Extraction(markdown=True), use_budget=False)  # fmt: skip
        for text in (found.text, found.markdown or "", found.title or ""):
            assert "¶" not in text and "§" not in text, (page.name, text[:200])
        tree = LexborHTMLParser(page.read_text(errors="replace"))  # the title is the page's
        said = [" ".join(n.text().split()) for n in tree.css("title, h1")]
        assert any(found.title and found.title in title for title in said), (found.title, said)
        if found.title:  # the text does not repeat it; the markdown is a page with its "# title"
            assert found.text.partition("\n")[0].strip() != found.title.strip(), page.name


def test_a_link_named_copy_is_content_and_a_glyph_link_anywhere_is_furniture() -> None:
    page = PAGE.replace(
        f"<p>{PROSE * 3}</p>",
        f'<p>{PROSE * 3} See <a href="sql-copy.html">COPY</a> for bulk loads.'
        ' <a href="https://git.example.org/commit/b073c3c">§</a></p>',
        1,
    )
    text = extract(page, "https://e.org/p", Extraction()).text
    assert "See COPY for bulk loads." in text and "§" not in text


API_ENTRY = f"""<html><head><title>pilots</title></head><body><div role="main">
<h1>pilots</h1><p>{PROSE * 3}</p>
<dl class="py function"><dt class="sig" id="board">
<span class="sig-name">board</span>(<em>vessel</em>)<a class="headerlink" href="#board">¶</a></dt>
<dd><p>Board a vessel and
guide it through the channel.</p>
<div class="highlight-pycon"><div class="highlight"><pre><span>&gt;&gt;&gt; </span>board(v)
<span>'aboard'</span>
</pre></div></div></dd></dl>
<pre class="synopsis">BOARD <em>vessel</em> [ AT <em>dawn</em> ]
    [ WITH <em>pilot</em> ]</pre>
<p>{PROSE * 2}</p></div></body></html>"""


def test_definitions_and_synopses_keep_their_code_and_paragraphs_are_lines() -> None:
    found = extract(API_ENTRY, "https://docs.example.org/pilots", Extraction(markdown=True))
    assert "board(vessel)\nBoard a vessel and guide it through the channel.\n" in found.text
    assert ">>> board(v)\n'aboard'" in found.text  # an API entry's example keeps its lines
    assert "```\nBOARD vessel [ AT dawn ]\n    [ WITH pilot ]\n```" in (found.markdown or "")
    assert "board(v)" not in found.prose and "BOARD vessel" not in found.prose
    assert all(line == line.strip() for line in found.prose.splitlines())


def test_a_note_box_heading_is_not_the_title() -> None:
    page = f"""<html><head><title>pilot</title></head><body><div class="refentry">
<div class="refnamediv"><h2><span class="refentrytitle">pilot</span></h2>
<p>pilot — guide a vessel</p></div><div class="refsect1"><h2>Description</h2>
<p>{PROSE * 3}</p><div class="note"><h3 class="title">Note</h3><p>{PROSE}</p></div>
<p>{PROSE * 2}</p></div></div></body></html>"""
    assert extract(page, "https://docs.example.org/p", Extraction()).title == "pilot"


def test_the_resiliparse_engine_reads_the_same_clean_page() -> None:
    found = extract(PAGE, "https://docs.example.org/pilots", Extraction(engine="resiliparse"))
    assert found.method == "resiliparse" and found.title == "Channel pilots"
    assert "narrow channel at dawn" in found.text and "pilot --board vessel" in found.text
    assert "pilot --board vessel" not in found.prose
    for widget in WIDGETS:
        assert widget not in found.text, widget
    assert not found.text.startswith("Channel pilots")
    with pytest.raises(ValueError, match="markdown needs engine: trafilatura"):
        Extraction(engine="resiliparse", markdown=True)
