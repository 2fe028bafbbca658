"""Quality signals and the rules that drop documents on them (Gopher and C4 heuristics).

Signals are kept as columns on every document, so users can re-threshold without re-crawling.
Except for the word count, they are measured on the page's prose (its text without code
blocks and tables): Gopher's and C4's style and repetition rules were designed on web prose,
and code or a reference table repeats its tokens by nature (measured on the Python docs:
`bench/quality.py`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

from harvester.pipeline.language import identify
from harvester.spec import Quality

_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"[^\W\d_]")
_BULLETS = ("\u2022", "-", "*", "\u00b7", "\u2023", "\u2013", "\u2014", "\u27a4", "\u25aa")
_TERMINAL = (".", "!", "?", '"', "'", "\u201d", "\u2019", "\u3002", "\uff01", "\uff1f")
"""C4's line endings (and their typographic and CJK forms); `)` and `:` end index and menu
entries as often as sentences."""
MIN_STYLE_WORDS = 50
"""Words of prose the line-style rules (C4's punctuation, Gopher's bullets and ellipses) need
to judge a page: they were made to catch menus and link lists, and a reference page whose text
is a table with a one-line introduction has no sample to judge."""
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
    bullet_line_ratio: float | None
    """None (as the two below) when the prose has under `MIN_STYLE_WORDS` words to judge."""
    ellipsis_line_ratio: float | None
    punctuated_line_ratio: float | None
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


def _line_ratio(lines: list[str], words: int, test: Callable[[str], bool]) -> float | None:
    if words < MIN_STYLE_WORDS:
        return None
    return _ratio(sum(1 for line in lines if test(line)), len(lines))


def _duplicate_ratio(items: list[str]) -> float:
    """Share of items that repeat an earlier one (the first occurrence is not counted)."""
    return _ratio(len(items) - len(set(items)), len(items))


def _top_ngram_ratio(words: list[str], n: int, chars: int) -> float:
    if len(words) < n:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, count = counts.most_common(1)[0]
    return _ratio(count * sum(len(w) for w in gram), chars) if count > 1 else 0.0


def _duplicate_ngram_ratio(words: list[str], n: int, chars: int) -> float:
    """Characters of words in n-grams that repeat an earlier one, scanned left to right and
    skipping past each repeat (Gopher, as datatrove and FineWeb count it)."""
    seen: set[tuple[str, ...]] = set()
    repeated, i = 0, 0
    while i <= len(words) - n:
        gram = tuple(words[i : i + n])
        if gram in seen:
            repeated += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return _ratio(repeated, chars)


def measure(text: str, prose: str | None = None) -> Signals:
    """Every signal of a text: its word count, and the rest on its `prose` (default: all of
    it)."""
    prose = text if prose is None else prose
    words = _WORD.findall(prose.lower())
    chars = sum(len(w) for w in words)
    lines = [line.strip() for line in prose.splitlines() if line.strip()]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", prose) if p.strip()]
    language, score = identify(prose) if words else ("", 0.0)
    symbols = prose.count("#") + prose.count("...") + prose.count("…")
    return Signals(
        word_count=len(_WORD.findall(text)),
        language=language,
        language_score=round(score, 4),
        mean_word_length=_ratio(chars, len(words)),
        symbol_word_ratio=_ratio(symbols, len(words)),
        alpha_word_ratio=_ratio(sum(1 for w in words if _ALPHA.search(w)), len(words)),
        bullet_line_ratio=_line_ratio(lines, len(words), lambda ln: ln.startswith(_BULLETS)),
        ellipsis_line_ratio=_line_ratio(lines, len(words), lambda ln: ln.endswith(("...", "…"))),
        punctuated_line_ratio=_line_ratio(lines, len(words), lambda ln: ln.endswith(_TERMINAL)),
        duplicate_line_ratio=_duplicate_ratio(lines),
        duplicate_paragraph_ratio=_duplicate_ratio(paragraphs),
        top_2gram_ratio=_top_ngram_ratio(words, 2, chars),
        top_3gram_ratio=_top_ngram_ratio(words, 3, chars),
        top_4gram_ratio=_top_ngram_ratio(words, 4, chars),
        duplicate_5gram_ratio=_duplicate_ngram_ratio(words, 5, chars),
        duplicate_10gram_ratio=_duplicate_ngram_ratio(words, 10, chars),
    )


def _beyond(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


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
        ("bullets", _beyond(s.bullet_line_ratio, rules.max_bullet_line_ratio)),
        ("ellipsis", _beyond(s.ellipsis_line_ratio, rules.max_ellipsis_line_ratio)),
        ("punctuation", _beyond(rules.min_punctuated_line_ratio, s.punctuated_line_ratio)),
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
