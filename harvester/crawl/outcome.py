"""One URL's outcome, typed: what the crawl records in the frontier row of that URL."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Column widths of the frontier (PostgreSQL enforces them): server-controlled values are cut
# when the outcome is final, and counted.
_WIDTHS = {"content_type": 255, "last_modified": 64, "reason": 64, "dropped": 64}


@dataclass
class Outcome:
    """The single outcome of one claimed URL (`fetched`, `not-modified`, `skipped`, `failed`)."""

    id: int
    host: str
    """The lease it was fetched under: the commit checks that lease's fencing token."""
    outcome: str = ""
    reason: str | None = None
    status: int | None = None
    attempts: int = 0
    robots: str | None = None
    proxy: str | None = None
    final_url: str | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    bytes: int | None = None
    fetched_at: datetime | None = None
    dropped: str | None = None
    staging_part: str | None = None
    counters: Counter[str] = field(default_factory=Counter)
    """Counters that belong to this URL: committed with it, so they never run ahead."""

    def row(self) -> dict[str, Any]:
        """The frontier update (by id) that records it; `host` rides along for the fence."""
        row: dict[str, Any] = {
            "id": self.id,
            "host": self.host,
            "state": "done",
            "outcome": self.outcome,
            "reason": self.reason,
            "status": self.status,
            "attempts": self.attempts,
            "robots": self.robots,
            "proxy": self.proxy,
            "final_url": self.final_url,
            "content_type": self.content_type,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "bytes": self.bytes,
            "fetched_at": self.fetched_at,
            "dropped": self.dropped,
            "staging_part": self.staging_part,
        }
        return row

    def finish(self, outcome: str, reason: str | None = None, status: int | None = None) -> None:
        """Set the outcome and count it."""
        self.outcome, self.reason, self.status = outcome, reason, status
        self.counters[f"fetch/outcome/{outcome}"] += 1
        for name, width in _WIDTHS.items():
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > width:
                setattr(self, name, value[:width])
                self.counters[f"fetch/truncated/{name}"] += 1
        if outcome in ("failed", "skipped") and reason:
            self.counters[f"fetch/{outcome}/{reason}"] += 1
