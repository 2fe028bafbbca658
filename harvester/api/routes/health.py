"""`/healthz` (open) and `/metrics` (Prometheus text, needs a key)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.deps import Reader, Svc
from harvester.api.schemas import Health
from harvester.catalog.models import Job
from harvester.stats import Stats

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(svc: Svc) -> Health:
    """Liveness: the catalog answers."""
    with svc.sessions() as session:
        session.execute(text("SELECT 1"))
    return Health(status="ok")


class CatalogCollector(Collector):
    """Metrics read from the catalog on each scrape, so every process reports the same."""

    def __init__(self, sessions: sessionmaker[Session], worker_pools: dict[str, object]) -> None:
        self._sessions = sessions
        self._pools = worker_pools

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        # O(jobs), never O(URLs): every figure comes from the jobs' own counters.
        with self._sessions() as session:
            states = dict(
                session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
            )
            stats_rows = session.execute(select(Job.state, Job.stats)).all()
        jobs = GaugeMetricFamily("harvester_jobs", "Jobs by state", labels=["state"])
        for state in ("queued", "running", "building", "succeeded", "failed", "cancelled"):
            jobs.add_metric([state], states.get(state, 0))
        yield jobs
        queue = 0
        for state, stats in stats_rows:
            if state == "running":
                counted = Stats(stats or {})
                queue += counted.get("frontier/discovered") - sum(
                    counted.with_prefix("fetch/outcome").values()
                )
        yield GaugeMetricFamily(
            "harvester_frontier_queue", "URLs of running jobs without an outcome", value=queue
        )
        totals: Counter[str] = Counter()
        for _, stats in stats_rows:
            totals.update(stats or {})
        pages = CounterMetricFamily("harvester_pages", "URL outcomes", labels=["outcome"])
        for name, value in sorted(totals.items()):
            if name.startswith("fetch/outcome/"):
                pages.add_metric([name.rsplit("/", 1)[1]], value)
        yield pages
        drops = CounterMetricFamily(
            "harvester_pipeline_drops", "Documents dropped", labels=["reason"]
        )
        pii = CounterMetricFamily("harvester_pii_found", "PII values found", labels=["kind"])
        for name, value in sorted(totals.items()):
            if name.startswith("quality/dropped/"):
                drops.add_metric([name.rsplit("/", 1)[1]], value)
            elif name.startswith("pii/") and name.count("/") == 1:
                pii.add_metric([name.split("/")[1]], value)
        yield drops
        yield pii
        health = GaugeMetricFamily(
            "harvester_proxies", "Proxies by pool and state", labels=["pool", "state"]
        )
        for name, pool in self._pools.items():
            counts = Counter(str(row["state"]) for row in pool.health())  # type: ignore[attr-defined]
            for state, count in counts.items():
                health.add_metric([name, state], count)
        yield health


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
def metrics(svc: Svc, _: Reader) -> Response:
    """Prometheus exposition."""
    registry = CollectorRegistry()
    registry.register(CatalogCollector(svc.sessions, dict(svc.worker.pools) if svc.worker else {}))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
