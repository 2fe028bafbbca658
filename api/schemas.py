"""Response schemas: what clients see, kept apart from catalog rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


def _utc(value: Any) -> Any:
    # SQLite hands datetimes back without their zone; every stored time is UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_utc)]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a listing."""

    items: list[T]
    total: int
    limit: int
    offset: int


class SnapshotRef(BaseModel):
    """The snapshot a job produced."""

    dataset: str
    version: int


class Progress(BaseModel):
    """Live counters of a job (updated at every commit, about twice a second)."""

    discovered: int
    fetched: int
    not_modified: int
    failed: int
    skipped: int
    failed_by_reason: dict[str, int]
    extracted: int
    filtered_by_rule: dict[str, int]
    pii_found: dict[str, int]
    duplicates: int
    documents_written: int
    pages_per_s: float
    waiting: list[str] = Field(
        default=[],
        description="While the job runs (`GET /v1/jobs/{id}` only): its hosts that send nothing "
        'for now and why, e.g. "shop.example: proxies cooling down until 05:12:30 UTC", '
        '"Retry-After after a 429 until …", "Crawl-delay 10 s".',
    )


class HostProgress(BaseModel):
    """One host of a job: its URLs by where they stand."""

    host: str
    fetched: int = Field(description="URLs fetched or found not modified (304).")
    failed: int
    skipped: int
    pending: int = Field(description="URLs not done yet: waiting for a worker or claimed.")
    holder: str | None = Field(description="The worker holding the host's lease now.")
    waiting: str | None = Field(description="Why the holder sends nothing for now, if so.")


class FailureGroup(BaseModel):
    """URLs of a job that failed or were skipped for one reason."""

    reason: str = Field(description='Outcome and reason, e.g. "failed connect/refused".')
    count: int = Field(description="URLs that ended so.")
    examples: list[str] = Field(description="A few of those URLs, first admitted first.")


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    dataset: str
    state: str
    created_at: Time
    started_at: Time | None
    finished_at: Time | None
    error: str | None
    cancel_requested: bool
    schedule_id: str | None
    local: bool = Field(
        description="Run by a `harvester crawl` process: service workers never take it."
    )
    progress: Progress
    failures: list[FailureGroup] = Field(
        description="Once the job has ended: its failed and skipped URLs by reason, most "
        "frequent first, with examples."
    )
    snapshot: SnapshotRef | None
    counters: dict[str, int]


class PageOutcome(BaseModel):
    """One URL's outcome."""

    url: str
    depth: int
    state: str
    outcome: str | None
    reason: str | None
    status: int | None
    attempts: int
    robots: str | None
    proxy: str | None
    dropped: str | None
    fetched_at: Time | None


class SnapshotSummary(BaseModel):
    """One committed version."""

    version: int
    parent_version: int | None
    created_at: Time
    rows: int
    bytes: int
    splits: dict[str, int]


class DatasetOut(BaseModel):
    """A dataset and its latest version."""

    name: str
    latest_version: int
    versions: int
    rows: int
    bytes: int
    created_at: Time


class DiffOut(BaseModel):
    """Documents added, removed and changed against the parent version (URLs capped)."""

    dataset: str
    version: int
    parent_version: int | None
    counts: dict[str, int]
    added: list[str]
    removed: list[str]
    changed: list[str]


class ScheduleIn(BaseModel):
    """A new schedule: a cron expression and the job each run submits."""

    model_config = ConfigDict(strict=True)

    cron: str
    timezone: str = "UTC"
    job: dict[str, Any]


class SchedulePatch(BaseModel):
    """Changes to a schedule."""

    model_config = ConfigDict(strict=True)

    cron: str | None = None
    timezone: str | None = None
    paused: bool | None = None
    job: dict[str, Any] | None = None


class ScheduleOut(BaseModel):
    """A schedule."""

    id: str
    dataset: str
    cron: str
    timezone: str
    paused: bool
    created_at: Time
    next_run_at: Time
    last_run_at: Time | None
    job: dict[str, Any]
    error: str | None = None
    """Why the scheduler paused it (its stored job spec no longer validates), or null."""


class ProxyOut(BaseModel):
    """One proxy, credentials masked, with its live state when a job uses the pool."""

    proxy: str
    tier: int
    state: str
    banned_domains: list[str]


class ProxyPoolOut(BaseModel):
    """A pool with masked credentials."""

    name: str
    rotation: str
    sticky_per_domain: bool
    cooldown_s: float
    max_cooldown_s: float
    proxies: list[ProxyOut]


class HostIn(BaseModel):
    """An operator's policy for one host; every job and worker obeys it."""

    # strict: a JSON `true` or `"5"` is not a number (lax mode would take them as 1 and 5).
    model_config = ConfigDict(extra="forbid", strict=True)

    max_rps: Annotated[float | None, Field(gt=0, le=1000)] = None
    """Rate ceiling in requests per second for all jobs together (None: the jobs' own)."""
    concurrency: Annotated[int | None, Field(ge=1, le=256)] = None
    """Requests in flight at once, for all jobs together."""
    blocked: bool = False
    """Never fetch from the host: its URLs end `skipped policy/blocked`."""
    note: Annotated[str | None, Field(max_length=500)] = None
    """Why (shown to other operators)."""


class HostOut(BaseModel):
    """A host: its policy, the worker crawling it now, and its pending URLs."""

    host: str
    max_rps: float | None
    concurrency: int | None
    blocked: bool
    note: str | None
    policy_updated_at: Time | None
    holder: str | None
    """The worker that holds the host's lease now, if any."""
    pending: int
    """URLs of any job waiting for this host."""


class Health(BaseModel):
    """Liveness."""

    status: str


class KeyIn(BaseModel):
    """A new API key."""

    model_config = ConfigDict(strict=True)

    name: str = Field(min_length=1, max_length=100)
    scope: Literal["read", "admin"]


class KeyOut(BaseModel):
    """An API key's record; `key` is only present in the answer that created it."""

    id: str
    name: str
    scope: str
    created_at: Time
    revoked_at: Time | None
    key: str | None = None


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message and, for validation errors, the fields."""

    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "The body is not JSON (or not UTF-8)",
        401: "Missing or invalid API key",
        403: "The key lacks the scope",
        404: "Not found",
        409: "Conflicts with the resource's state",
        413: "Request body over 1 MiB",
        416: "Range not satisfiable",
        422: "Invalid input (the fields are named)",
        429: "Too many writes with this key; retry after Retry-After",
        500: "Internal error",
        503: "The catalog or the object store is unavailable for now; retry after Retry-After",
    }.items()
}
