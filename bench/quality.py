"""Dataset quality on real sites: what the default pipeline keeps of Debian's doc packages.

    python bench/quality.py [--only sites|pii|engines] [--examples 3] [--speed-pages 300]

sites: runs the crawl-phase pipeline (extract → quality → PII) with the default spec on every
HTML page of python3.11-doc, postgresql-doc-15 and git-doc, on every core, and prints per
site: article pages kept of all articles, navigation pages dropped, drops per rule with
examples, permalink glyphs and widget text remaining in what is kept; then our Gopher rules
against datatrove's on the same texts (when datatrove is installed).
pii: recall per kind and look-alikes kept on tests/pii_corpus.py.
engines: word-level F1 of trafilatura and Resiliparse on the hand-labelled pages of
bench/extraction_gold.json, and their pages/s on one core.

A page is navigation when, once its generator's tables of contents and indexes are taken out
(Sphinx's toctree and index tables, DocBook's `div.toc` and `div.index`, AsciiDoc's `#toc`),
fewer than `NAV_WORDS` words of its own remain or fewer than those listings held.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selectolax.lexbor import LexborHTMLParser

from docs import ensure_docs, sample_pages
from harvester.pipeline.extract import extract
from harvester.pipeline.furniture import WIDGET
from harvester.pipeline.process import Page, process_page
from harvester.pipeline.quality import judge, measure
from harvester.spec import Extraction, Pipeline, Quality
from tests.pii_corpus import corpus, scores

NAV_WORDS = 50
_LISTINGS = (
    ".toctree-wrapper, table.indextable, table.modindextable, .genindex-jumpbox, "
    ".modindex-jumpbox, #search-results, div.toc, div.index, #toc"
)
_CHROME = (
    "script, style, nav, header, footer, div.navheader, div.navfooter, #footer, "
    "div.related, div.sphinxsidebar, div.footer"
)
GLYPHS = ("¶", "§", "🔗")
COOKIE_NOTICE = re.compile(r"(we|this (web)?site) uses? cookies", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """One page: its site, whether it is an article, and what the pipeline made of it."""

    site: str
    path: str
    article: bool
    dropped: str | None
    glyphs: int
    widgets: int
    title_repeated: bool
    ours_web: str | None
    """Our `web` preset's Gopher rules on the whole text (no prose split), as datatrove sees it."""
    datatrove: str | None
    """datatrove's GopherQualityFilter + GopherRepetitionFilter on the same text (None: kept,
    or datatrove not installed)."""


def is_article(html: str) -> bool:
    """Whether a page is an article: at least `NAV_WORDS` words of its own, and more of them
    than in the tables of contents and indexes it holds (a listing page with an intro is
    navigation)."""
    tree = LexborHTMLParser(html)
    for node in tree.css(_CHROME):
        node.decompose()
    listed = 0
    for node in tree.css(_LISTINGS):
        listed += len(node.text(separator=" ").split())
        node.decompose()
    main = tree.css_first("div.body, div[role=main], #content") or tree.body
    own = len(main.text(separator=" ").split()) if main is not None else 0
    return own >= NAV_WORDS and own > listed


GOPHER_ONLY = Quality(preset="web", languages=[], min_punctuated_line_ratio=0.0, max_words=100_000)
"""Our rules that datatrove's two Gopher filters also have (not C4's punctuation, not language)."""


def datatrove_verdict(text: str) -> str | None:
    """The first datatrove Gopher filter (quality, then repetition) that drops the text."""
    from datatrove.data import Document as DatatroveDocument
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    doc = DatatroveDocument(text=text, id="0")
    for step in (GopherQualityFilter(min_stop_words=None), GopherRepetitionFilter()):
        verdict = step.filter(doc)
        if verdict is not True:
            return verdict[1] if isinstance(verdict, tuple) else step.name
    return None


def _glyphs_in_prose(html: str) -> int:
    """Glyphs the page writes as text, outside links ("Section markers (§) link to…")."""
    tree = LexborHTMLParser(html)
    for node in tree.css("a, script, style"):
        node.decompose()
    text = tree.body.text() if tree.body is not None else ""
    return sum(text.count(g) for g in GLYPHS)


def judge_file(job: tuple[str, Path, Path, Pipeline, bool]) -> Verdict:
    site, root, path, pipeline, compare = job
    html = path.read_text(errors="replace")
    url = f"http://{site}/{path.relative_to(root)}"
    done = process_page(Page(url, site, html, "", datetime.now(UTC)), pipeline)
    text = extract(html, url, pipeline.extract).text if compare else ""
    doc = done.document
    text = f"{doc.title or ''}\n{doc.text}" if doc else ""
    first = doc.text.split("\n", 1)[0].strip() if doc else ""
    return Verdict(
        site=site,
        path=str(path.relative_to(root)),
        article=is_article(html),
        dropped=done.dropped,
        glyphs=max(0, sum(text.count(g) for g in GLYPHS) - _glyphs_in_prose(html)),
        widgets=sum(1 for line in text.splitlines() if WIDGET.fullmatch(line.strip()))
        + len(COOKIE_NOTICE.findall(text)),
        title_repeated=bool(doc and doc.title and first == doc.title.strip()),
        ours_web=judge(measure(text), GOPHER_ONLY) if text else None,
        datatrove=datatrove_verdict(text) if text else None,
    )


def report(verdicts: list[Verdict], examples: int) -> None:
    by_site: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_site[v.site].append(v)
    print(f"{'site':20} {'pages':>6} {'articles kept':>16} {'nav dropped':>14}")
    for site, items in [*sorted(by_site.items()), ("all", verdicts)]:
        articles = [v for v in items if v.article]
        kept = sum(1 for v in articles if v.dropped is None)
        nav = [v for v in items if not v.article]
        nav_dropped = sum(1 for v in nav if v.dropped is not None)
        share = kept / len(articles) if articles else 0.0
        print(
            f"{site:20} {len(items):6} {kept:7}/{len(articles):<5} {share:6.1%}"
            f" {nav_dropped:6}/{len(nav):<5}"
        )
    print("\ndrops per rule (articles | navigation), with examples of dropped articles:")
    rules: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        if v.dropped:
            rules[v.dropped].append(v)
    for rule, items in sorted(rules.items(), key=lambda kv: -len(kv[1])):
        arts = [v for v in items if v.article]
        print(f"  {rule:32} {len(arts):5} | {len(items) - len(arts):5}")
        for v in (arts or items)[:examples]:
            print(f"      {v.site}/{v.path}")
    nav_kept = [v for v in verdicts if not v.article and v.dropped is None]
    print(f"\nnavigation pages kept: {len(nav_kept)}")
    for v in nav_kept[:examples]:
        print(f"      {v.site}/{v.path}")
    kept = [v for v in verdicts if v.dropped is None]
    print(f"\nin {len(kept)} kept documents:")
    with_glyphs = sorted((v for v in kept if v.glyphs), key=lambda v: -v.glyphs)
    print(
        f"  permalink glyphs (¶ § 🔗, beyond those written as text): {sum(v.glyphs for v in kept)}"
    )
    for v in with_glyphs[:examples]:
        print(f"      {v.glyphs:4}  {v.site}/{v.path}")
    print(
        f"  widget lines (edit/copy/report/skip) and cookie notices: {sum(v.widgets for v in kept)}"
    )
    print(f"  text's first line repeats the title: {sum(v.title_repeated for v in kept)}")


def compare(verdicts: list[Verdict], examples: int) -> None:
    """Our Gopher rules against datatrove's on the same texts."""
    judged = [v for v in verdicts if v.ours_web is not None or v.datatrove is not None]
    both = sum(1 for v in verdicts if v.ours_web is not None and v.datatrove is not None)
    ours = [v for v in verdicts if v.ours_web is not None and v.datatrove is None]
    theirs = [v for v in verdicts if v.ours_web is None and v.datatrove is not None]
    agree = len(verdicts) - len(ours) - len(theirs)
    print("\nGopher rules, ours (web preset, whole text) vs datatrove 0.10 on the same texts:")
    print(
        f"  same verdict {agree}/{len(verdicts)} (both drop {both}, both keep "
        f"{len(verdicts) - len(judged)}); only we drop {len(ours)}, only datatrove {len(theirs)}"
    )
    for name, items, rule in (
        ("only we drop", ours, "ours_web"),
        ("only datatrove drops", theirs, "datatrove"),
    ):
        counts: dict[str, list[Verdict]] = defaultdict(list)
        for v in items:
            counts[str(getattr(v, rule))].append(v)
        for reason, its in sorted(counts.items(), key=lambda kv: -len(kv[1])):
            print(
                f"    {name:22} {reason:30} {len(its):4}  e.g. "
                + ", ".join(f"{v.site}/{v.path}" for v in its[:examples])
            )


GOLD = Path(__file__).with_name("extraction_gold.json")
DEMO = Path(__file__).resolve().parents[1] / "harvester" / "demo_site" / "pages"
_WORDS = re.compile(r"\w+")


def gold_text(html: str, main: str, drop: list[str]) -> str:
    """The text a label selects: its main elements without what it drops."""
    tree = LexborHTMLParser(html)
    for selector in drop:
        for node in tree.css(selector):
            node.decompose()
    return "\n".join(node.text(separator="\n") for node in tree.css(main))


def word_f1(predicted: str, gold: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of the bags of words (lower case, word characters)."""
    p, g = Counter(_WORDS.findall(predicted.lower())), Counter(_WORDS.findall(gold.lower()))
    overlap = sum((p & g).values())
    precision = overlap / sum(p.values()) if p else 0.0
    recall = overlap / sum(g.values()) if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def engines(examples: int, speed_pages: int) -> None:
    """Each engine's word-level F1 on the hand-labelled pages, and its pages/s on one core."""
    roots = {**ensure_docs(), "demo": DEMO}
    labels = json.loads(GOLD.read_text())["pages"]
    pages = []
    for label in labels:
        site, rest = label["page"].split("/", 1)
        html = (roots[site] / rest).read_text(errors="replace")
        pages.append((label, html, gold_text(html, label["main"], label["drop"])))
    sample = [p.read_text(errors="replace") for p in sample_pages(speed_pages, seed=1)]
    print(
        f"\nextraction engines: word-level F1 on {len(pages)} hand-labelled pages "
        f"({GOLD.name}), speed on {len(sample)} pages on one core"
    )
    print(f"  {'engine':12} {'pages/s':>8} {'precision':>10} {'recall':>8} {'F1':>6}  worst F1")
    for engine in ("trafilatura", "resiliparse"):
        options = Extraction(engine=engine)
        started = time.process_time()
        for html in sample:
            extract(html, "http://docs.test/page.html", options, use_budget=False)
        speed = len(sample) / (time.process_time() - started)
        scored = []
        for label, html, gold in pages:
            found = extract(html, f"http://docs.test/{label['page']}", options, use_budget=False)
            text = found.text
            if found.title and not text.startswith(found.title):
                text = f"{found.title}\n{text}"  # the title is a column of its own
            scored.append((label, *word_f1(text, gold)))
        mean = [sum(row[i] for row in scored) / len(scored) for i in (1, 2, 3)]
        worst = sorted(scored, key=lambda row: row[3])[:examples]
        print(
            f"  {engine:12} {speed:8.1f} {mean[0]:10.3f} {mean[1]:8.3f} {mean[2]:6.3f}  "
            + ", ".join(f"{row[0]['page']} {row[3]:.2f}" for row in worst)
        )
        kinds: dict[str, list[float]] = defaultdict(list)
        for row in scored:
            kinds[row[0]["kind"]].append(row[3])
        print(
            "    F1 by kind: "
            + ", ".join(
                f"{kind} {sum(v) / len(v):.2f} ({len(v)})" for kind, v in sorted(kinds.items())
            )
        )


def sites(examples: int) -> None:
    """The default pipeline on every page of the three doc sites, in a pool on every core."""
    pipeline = Pipeline()
    try:
        import datatrove  # noqa: F401

        with_datatrove = True
    except ImportError:
        print("datatrove is not installed: no comparison (pip install datatrove spacy)\n")
        with_datatrove = False
    jobs = [
        (site, root, path, pipeline, with_datatrove)
        for site, root in ensure_docs().items()
        for path in sorted(root.rglob("*.html"))
    ]
    started = time.perf_counter()
    with multiprocessing.Pool() as pool:
        verdicts = pool.map(judge_file, jobs, chunksize=8)
    elapsed = time.perf_counter() - started
    print(f"{len(verdicts)} pages in {elapsed:.1f} s on {multiprocessing.cpu_count()} cores\n")
    report(verdicts, examples)
    if with_datatrove:
        compare(verdicts, examples)


def pii() -> None:
    """Recall per kind and look-alikes kept on the test corpus (tests/pii_corpus.py)."""
    print("\nPII on tests/pii_corpus.py (phones: every region's example numbers):")
    for kind, (right, total) in scores(corpus()).items():
        name = "look-alikes kept" if kind == "look-alike" else f"recall {kind}"
        print(f"  {name:28} {right:4}/{total:<4} {right / total:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--speed-pages", type=int, default=300)
    parser.add_argument("--only", choices=["sites", "pii", "engines"], default=None)
    args = parser.parse_args()
    if args.only in (None, "sites"):
        sites(args.examples)
    if args.only in (None, "pii"):
        pii()
    if args.only in (None, "engines"):
        engines(args.examples, args.speed_pages)


if __name__ == "__main__":
    main()
