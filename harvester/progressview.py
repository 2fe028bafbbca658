"""The live display of a job: one view for `harvester crawl` and `harvester jobs submit
--follow`, drawn from the same figures the API serves (`GET /v1/jobs/{id}` and its `/hosts`),
so the header and the per-host table count alike (a 304 is fetched in both)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from harvester.api.schemas import HostProgress, JobOut
from harvester.store.manifest import Manifest


def _pairs(counts: dict[str, int], limit: int = 4) -> str:
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{name} {count}" for name, count in top)


class ProgressView:
    """Renders successive snapshots of one job; rates are measured between them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: dict[str, tuple[float, int]] = {}  # host or "" (the job) → first seen

    def _rate(self, key: str, done: int) -> float:
        now = self._clock()
        since, before = self._first.setdefault(key, (now, done))
        return (done - before) / (now - since) if now - since >= 1.0 else 0.0

    def render(self, job: JobOut, hosts: list[HostProgress]) -> Group:
        """Header lines (counts, pipeline, waits) over a table of the busiest hosts."""
        p = job.progress
        fetched = p.fetched + p.not_modified
        done = fetched + p.failed + p.skipped
        lines = [
            Text.assemble(
                (f"job {job.id}", "bold"),
                f" · {job.state} · fetched {fetched}",
                f" ({p.not_modified} not modified)" if p.not_modified else "",
                f" · failed {p.failed} · skipped {p.skipped}",
                f" · queued {max(p.discovered - done, 0)}",
                f" · {self._rate('', fetched):.1f} pages/s",
            )
        ]
        if p.kept or p.filtered_by_rule:
            dropped = sum(p.filtered_by_rule.values())
            parts = [f"pipeline: kept {p.kept}", f"dropped {dropped}"]
            if dropped:
                parts[-1] += f" ({_pairs(p.filtered_by_rule)})"
            if p.pii_found:
                parts.append(f"PII masked {_pairs(p.pii_found)}")
            lines.append(Text(" · ".join(parts)))
        lines += [Text.assemble(("waiting: ", "yellow"), why) for why in p.waiting]
        table = Table(box=None, pad_edge=False)
        for column in ("host", "fetched", "failed", "skipped", "pending", "pages/s", "waiting"):
            table.add_column(column, justify="left" if column in ("host", "waiting") else "right")
        for host in hosts[:12]:
            table.add_row(
                host.host,
                str(host.fetched),
                str(host.failed),
                str(host.skipped),
                str(host.pending),
                f"{self._rate(host.host, host.fetched):.2f}",
                host.waiting or "",
            )
        return Group(*lines, table)


def outcome_lines(job: JobOut) -> list[str]:
    """What a finished job comes to, in a few lines: counts, failures by reason, snapshot."""
    p = job.progress
    lines = [
        f"{job.dataset}: job {job.id} {job.state}: fetched {p.fetched}, "
        f"not-modified {p.not_modified}, failed {p.failed}, skipped {p.skipped}"
    ]
    if p.kept or p.filtered_by_rule:
        dropped = sum(p.filtered_by_rule.values())
        lines.append(
            f"pipeline: kept {p.kept} of {p.fetched} pages, dropped {dropped}"
            + (f" ({_pairs(p.filtered_by_rule, 10)})" if dropped else "")
            + f"; duplicates {p.duplicates}"
        )
    lines += [
        f"{group.count} {group.reason}, e.g. {', '.join(group.examples)}"
        for group in job.failures[:5]
    ]
    return lines


def snapshot_lines(manifest: Manifest) -> list[str]:
    """A committed version in a line, with what dedup removed and a note when a split came
    out empty (a small crawl at the default 0.98/0.01/0.01 has no evaluation documents)."""
    splits = ", ".join(f"{name} {info.rows}" for name, info in manifest.splits.items())
    dedup = manifest.dedup
    lines = [
        f"{manifest.dataset}@v{manifest.version}: {manifest.rows} documents ({splits}); "
        f"duplicates removed: {dedup.exact_duplicates} exact, {dedup.near_duplicates} near"
    ]
    empty = [name for name, info in manifest.splits.items() if info.rows == 0]
    ratios = manifest.spec.get("splits", {})
    if empty and manifest.rows:
        shares = "/".join(f"{ratios.get(n, 0):g}" for n in ("train", "validation", "test"))
        lines.append(
            f"note: {' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty: "
            f"{manifest.rows} documents at {shares} leave {'it' if len(empty) == 1 else 'them'} "
            "none; give `splits` larger shares for a small crawl"
        )
    return lines
