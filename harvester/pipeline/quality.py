"""Quality signals and the rules that drop documents on them (Gopher and C4 heuristics).

Signals are kept as columns on every document, so users can re-threshold without re-crawling.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

from harvester.pipeline.language import identify
from harvester.spec import Quality

_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"[^\W\d_]")
_BULLETS = ("\u2022", "-", "*", "\u00b7", "\u2023", "\u2013", "\u2014", "\u27a4", "\u25aa")
_TERMINAL = (
    ".",
    "!",
    "?",
    '"',
    "'",
    "\u201d",
    "\u2019",
    ":",
    ";",
    ")",
    "\u3002",
    "\uff01",
    "\uff1f",
)
# Gopher scales the allowed n-gram coverage with n.
_TOP_NGRAM_SCALE = {2: 1.0, 3: 0.9, 4: 0.8}
_DUP_10GRAM_SCALE = 10 / 15  # Gopher allows 0.15 at 5-grams down to 0.10 at 10-grams


@dataclass(frozen=True)
class Signals:
    """Per-document figures the rules judge; stored as `quality_*` columns."""

    word_count: int
    language: str
    language_score: float
    mean_word_length: float
    symbol_word_ratio: float
    alpha_word_ratio: float
    bullet_line_ratio: float
    ellipsis_line_ratio: float
    punctuated_line_ratio: float
    duplicate_line_ratio: float
    duplicate_paragraph_ratio: float
    top_2gram_ratio: float
    top_3gram_ratio: float
    top_4gram_ratio: float
    duplicate_5gram_ratio: float
    duplicate_10gram_ratio: float

    def as_columns(self) -> dict[str, object]:
        """The signals keyed as snapshot columns."""
        return {f"quality_{k}": v for k, v in asdict(self).items()}


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _duplicate_ratio(items: list[str]) -> float:
    counts = Counter(items)
    return _ratio(sum(c for c in counts.values() if c > 1), len(items))


def _top_ngram_ratio(words: list[str], n: int, chars: int) -> float:
    if len(words) < n:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, count = counts.most_common(1)[0]
    return _ratio(count * sum(len(w) for w in gram), chars) if count > 1 else 0.0


def _duplicate_ngram_ratio(words: list[str], n: int, chars: int) -> float:
    """Characters of words covered by an n-gram that occurs more than once (Gopher)."""
    if len(words) < n:
        return 0.0
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = [True] * n
    return _ratio(sum(len(w) for w, c in zip(words, covered, strict=True) if c), chars)


def measure(text: str) -> Signals:
    """Compute every signal of a text."""
    words = _WORD.findall(text.lower())
    chars = sum(len(w) for w in words)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    language, score = identify(text) if words else ("", 0.0)
    symbols = text.count("#") + text.count("...") + text.count("…")
    return Signals(
        word_count=len(words),
        language=language,
        language_score=round(score, 4),
        mean_word_length=_ratio(chars, len(words)),
        symbol_word_ratio=_ratio(symbols, len(words)),
        alpha_word_ratio=_ratio(sum(1 for w in words if _ALPHA.search(w)), len(words)),
        bullet_line_ratio=_ratio(sum(1 for ln in lines if ln.startswith(_BULLETS)), len(lines)),
        ellipsis_line_ratio=_ratio(sum(1 for ln in lines if ln.endswith(("...", "…"))), len(lines)),
        punctuated_line_ratio=_ratio(sum(1 for ln in lines if ln.endswith(_TERMINAL)), len(lines)),
        duplicate_line_ratio=_duplicate_ratio(lines),
        duplicate_paragraph_ratio=_duplicate_ratio(paragraphs),
        top_2gram_ratio=_top_ngram_ratio(words, 2, chars),
        top_3gram_ratio=_top_ngram_ratio(words, 3, chars),
        top_4gram_ratio=_top_ngram_ratio(words, 4, chars),
        duplicate_5gram_ratio=_duplicate_ngram_ratio(words, 5, chars),
        duplicate_10gram_ratio=_duplicate_ngram_ratio(words, 10, chars),
    )


def judge(s: Signals, rules: Quality) -> str | None:
    """The first rule the signals fail (a counter suffix), or None to keep the document."""
    checks: list[tuple[str, bool]] = [
        ("too_short", s.word_count < rules.min_words),
        ("too_long", s.word_count > rules.max_words),
        (
            "language",
            bool(rules.languages)
            and (s.language not in rules.languages or s.language_score < rules.min_language_score),
        ),
        (
            "word_length",
            not rules.min_mean_word_length <= s.mean_word_length <= rules.max_mean_word_length,
        ),
        ("symbols", s.symbol_word_ratio > rules.max_symbol_word_ratio),
        ("non_alpha", s.alpha_word_ratio < rules.min_alpha_word_ratio),
        ("bullets", s.bullet_line_ratio > rules.max_bullet_line_ratio),
        ("ellipsis", s.ellipsis_line_ratio > rules.max_ellipsis_line_ratio),
        ("punctuation", s.punctuated_line_ratio < rules.min_punctuated_line_ratio),
        ("duplicate_lines", s.duplicate_line_ratio > rules.max_duplicate_line_ratio),
        (
            "duplicate_paragraphs",
            s.duplicate_paragraph_ratio > rules.max_duplicate_paragraph_ratio,
        ),
        (
            "top_ngram",
            any(
                getattr(s, f"top_{n}gram_ratio") > rules.max_top_ngram_ratio * scale
                for n, scale in _TOP_NGRAM_SCALE.items()
            ),
        ),
        (
            "duplicate_ngrams",
            s.duplicate_5gram_ratio > rules.max_duplicate_ngram_ratio
            or s.duplicate_10gram_ratio > rules.max_duplicate_ngram_ratio * _DUP_10GRAM_SCALE,
        ),
    ]
    return next((name for name, failed in checks if failed), None)
