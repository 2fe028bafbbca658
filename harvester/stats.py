"""Counters with slash-path names (`fetch/status/429`, `frontier/rejected/depth`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping


class Stats:
    """A bag of named counters; merged into the job record and read by progress displays."""

    def __init__(self, initial: Mapping[str, int] | None = None) -> None:
        self._counts: Counter[str] = Counter(initial or {})

    def inc(self, name: str, amount: int = 1) -> None:
        """Add `amount` to counter `name`."""
        self._counts[name] += amount

    def get(self, name: str) -> int:
        """The value of one counter (0 if never touched)."""
        return self._counts[name]

    def with_prefix(self, prefix: str) -> dict[str, int]:
        """Counters under `prefix/`, keyed by the rest of their name."""
        start = len(prefix) + 1
        return {k[start:]: v for k, v in self._counts.items() if k.startswith(prefix + "/")}

    def as_dict(self) -> dict[str, int]:
        """All counters, sorted by name."""
        return dict(sorted(self._counts.items()))
