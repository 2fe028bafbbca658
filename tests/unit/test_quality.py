"""Quality signals and rules on real page text and on crafted failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from harvester.pipeline.extract import extract
from harvester.pipeline.quality import judge, measure
from harvester.spec import Extraction, Quality

DEMO = Path(__file__).parents[2] / "harvester" / "demo_site" / "pages"
SENTENCE = "The river rose quickly after three days of steady autumn rain in the valley. "
ARTICLE = extract(
    (DEMO / "birds" / "owls.html").read_text(), "http://demo/birds/owls.html", Extraction()
).text
BARE_WORDS = ARTICLE.replace(".", "").replace(",", "").split()
FRENCH = (
    "Le fleuve est monté rapidement après trois jours de pluie dans la vallée. "
    "Les pêcheurs ont rangé leurs barques bien avant la tombée de la nuit. "
    "Au marché du samedi, on trouve des pommes, du miel et du fromage de chèvre. "
    "La bibliothèque municipale ouvre ses portes plus tard pendant tout l'hiver. "
    "Les enfants du quartier apprennent à reconnaître les oiseaux migrateurs. "
    "Un sentier longe la rivière jusqu'au vieux moulin restauré par les bénévoles. "
    "Chaque printemps, les jardiniers échangent leurs graines lors d'une fête. "
    "Les crues de mars ont emporté une partie du pont de bois près de l'école."
)


def test_demo_article_passes_and_keeps_its_signals() -> None:
    html = (DEMO / "birds" / "owls.html").read_text()
    text = extract(html, "http://demo/birds/owls.html", Extraction()).text
    signals = measure(text)
    assert judge(signals, Quality()) is None
    assert signals.language == "en" and signals.language_score > 0.9
    assert signals.word_count > 50 and signals.punctuated_line_ratio > 0.5


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Too short to keep.", "too_short"),
        (FRENCH, "language"),
        (" ".join(f"{w} #" for w in ARTICLE.split()), "symbols"),
        ("\n".join(" ".join(BARE_WORDS[i : i + 5]) for i in range(0, 90, 5)), "punctuation"),
        ("\n".join([SENTENCE] * 12), "duplicate_lines"),
        (" ".join(SENTENCE.split()[:4] * 40) + ".", "top_ngram"),
    ],
)
def test_rules_drop_with_their_reason(text: str, rule: str) -> None:
    assert judge(measure(text), Quality()) == rule


def test_rules_are_configurable() -> None:
    text = "Too short to keep."
    assert judge(measure(text), Quality(min_words=1, min_punctuated_line_ratio=0)) is None
    assert judge(measure(FRENCH), Quality(languages=["fr"])) is None
    assert judge(measure(FRENCH), Quality(languages=[])) is None


CODE_LINE = "    result = client.fetch(url, timeout=timeout, retries=retries)\n"
API_PAGE = f"""<html lang="en"><head><title>Fetching</title></head><body><main><article>
<h1>Fetching pages</h1><p>{SENTENCE * 3}</p>
<pre><code>{CODE_LINE * 30}</code></pre><p>{ARTICLE}</p>
<table><tr><th>Option</th><th>Meaning</th></tr>
{"<tr><td>timeout</td><td>Seconds to wait for the server to answer</td></tr>" * 25}
</table></article></main></body></html>"""


def test_repetition_is_measured_on_prose_not_on_code_or_tables() -> None:
    found = extract(API_PAGE, "http://docs.test/fetch.html", Extraction())
    assert CODE_LINE.strip() in found.text and CODE_LINE.strip() not in found.prose
    assert "Seconds to wait" in found.text and "Seconds to wait" not in found.prose
    signals = measure(found.text, found.prose)
    assert signals.word_count == len(found.text.split())  # the length counts code and tables
    assert judge(signals, Quality()) is None
    # Judged on the whole text, code and table rows fail the line rules.
    assert judge(measure(found.text), Quality()) is not None


def test_presets_set_thresholds_and_explicit_values_win() -> None:
    sites, web = Quality(), Quality(preset="web")
    assert (
        sites.preset == "sites" and web.max_duplicate_ngram_ratio < sites.max_duplicate_ngram_ratio
    )
    assert Quality(preset="web", max_top_ngram_ratio=0.5).max_top_ngram_ratio == 0.5
    assert Quality(max_top_ngram_ratio=0.25).max_top_ngram_ratio == 0.25
    with pytest.raises(ValueError, match="sites"):
        Quality.model_validate({"preset": "forum"})


# An API reference repeats its phrases around what each entry says: Python's C-API pages.
_SENTENCES = [f"{s.strip()}." for s in ARTICLE.split(".") if len(s.split()) > 6]
REFERENCE = " ".join(
    f"PyObject *PyNumber_{name}(PyObject *o1, PyObject *o2). Return value: New reference. "
    f"Returns the {name.lower()} of o1 and o2, or NULL on failure. {said}"
    for name, said in zip(["Add", "Subtract", "Multiply", "Remainder", "Power", "Lshift"],
                          _SENTENCES, strict=False)
)  # fmt: skip
SPAM = " ".join([ARTICLE] * 2)
STUFFED = " ".join(f"cheap flights {w}" for w in ARTICLE.split()[:60]) + "."


@pytest.mark.parametrize(
    ("text", "sites", "web"),
    [
        (REFERENCE, None, "duplicate_ngrams"),
        (SPAM, "duplicate_ngrams", "duplicate_ngrams"),
        (STUFFED, "top_ngram", "top_ngram"),
        (ARTICLE, None, None),
    ],
)
def test_sites_keeps_references_and_both_presets_drop_spam(
    text: str, sites: str | None, web: str | None
) -> None:
    assert judge(measure(text), Quality()) == sites
    assert judge(measure(text), Quality(preset="web")) == web


def test_line_style_rules_need_enough_prose_to_judge() -> None:
    table_page = "Columns of the sequence catalog\n" + "\n".join(
        f"| seq{n} | int8 | Value number {n} of the sequence |" for n in range(30)
    )
    signals = measure(table_page, "Columns of the sequence catalog")
    assert signals.punctuated_line_ratio is None and judge(signals, Quality()) is None
    menu = "\n".join(" ".join(BARE_WORDS[i : i + 3]) for i in range(0, 90, 3))
    assert judge(measure(menu), Quality()) == "punctuation"
