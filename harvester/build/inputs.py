"""What one build consumes."""

from __future__ import annotations

from dataclasses import dataclass

from harvester.spec import JobSpec


@dataclass(frozen=True)
class BuildInput:
    """The job(s), their staging parts and what they learnt."""

    spec: JobSpec
    job_ids: list[str]
    staging: list[str]
    """Blob paths of the committed staging parts."""
    gone: frozenset[str]
    """URLs answered 404/410 or disallowed by robots.txt now: their documents leave the
    snapshot (so do those of parent URLs the job's scope no longer takes in)."""
    stats: dict[str, int]
    """Crawl-phase counters, merged into the manifest."""
