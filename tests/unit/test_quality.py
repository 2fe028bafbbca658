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
