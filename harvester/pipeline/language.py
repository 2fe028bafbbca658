"""Offline language identification with py3langid (its model ships inside the wheel)."""

from __future__ import annotations

from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

_SAMPLE_CHARS = 4000  # the score settles long before this; long pages cost no more


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    # Loaded once per process (about half a second), never per document.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language."""
    language, score = _identifier().classify(text[:_SAMPLE_CHARS])
    return str(language), float(score)
