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


class Schema(BaseModel):
    """A request or response body; a field's docstring is its description in the docs."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class Page(Schema, Generic[T]):
    """A page of a listing."""

    items: list[T]
    """This page's items."""
    total: int
    """Items matching the query, on all pages."""
    limit: int
    """Items per page asked for."""
    offset: int
    """Items skipped before this page."""


class SnapshotRef(Schema):
    """The snapshot a job produced."""

    dataset: str
    """Dataset name."""
    version: int
    """Version number."""


class Progress(Schema):
    """Live counters of a job (updated at every commit, about twice a second)."""

    discovered: int
    """URLs admitted to the job's frontier so far."""
    fetched: int
    """URLs fetched with a 2xx answer."""
    not_modified: int
    """URLs revalidated with a 304 (a refresh keeps the published document)."""
    failed: int
    """URLs that failed for good (after retries), by reason in `failed_by_reason`."""
    skipped: int
    """URLs left out on purpose: robots.txt, content type, size, scope, policy."""
    failed_by_reason: dict[str, int]
    """Failed URLs by reason, e.g. `connect/refused`, `status/404`, `timeout`."""
    extracted: int
    """Fetched pages whose main text was extracted (a page whose whole visible text is under
    `min_words` is dropped `too_short` before extraction)."""
    kept: int = 0
    """Pages that passed every quality rule: `fetched` less the drops in `filtered_by_rule`
    (and pages with no text); the build then removes `duplicates` of them."""
    filtered_by_rule: dict[str, int]
    """Pages dropped by the quality rules, by rule (`too_short`, `language`, …)."""
    pii_found: dict[str, int]
    """Personal data found, by kind (`email`, `phone`, …), masked or dropped as the spec says."""
    duplicates: int
    """Exact and near duplicates removed by the build."""
    documents_written: int
    """Documents in the snapshot the job committed."""
    pages_per_s: float
    """Fetched pages per second since the job started."""
    waiting: list[str] = Field(
        default=[],
        description="While the job runs (`GET /v1/jobs/{id}` only): its hosts that send nothing "
        'for now and why, e.g. "shop.example: proxies cooling down until 05:12:30 UTC", '
        '"Retry-After after a 429 until …", "Crawl-delay 10 s".',
    )


class HostProgress(Schema):
    """One host of a job: its URLs by where they stand."""

    host: str
    """The host (with its port when not the scheme's default)."""
    fetched: int = Field(description="URLs fetched or found not modified (304).")
    failed: int
    """The job's URLs here that failed."""
    skipped: int
    """The job's URLs here that were skipped."""
    pending: int = Field(description="URLs not done yet: waiting for a worker or claimed.")
    holder: str | None = Field(description="The worker holding the host's lease now.")
    waiting: str | None = Field(description="Why the holder sends nothing for now, if so.")


class FailureGroup(Schema):
    """URLs of a job that failed or were skipped for one reason."""

    reason: str = Field(description='Outcome and reason, e.g. "failed connect/refused".')
    """Outcome and reason, e.g. "failed connect/refused"."""
    count: int = Field(description="URLs that ended so.")
    examples: list[str] = Field(description="A few of those URLs, first admitted first.")


class JobOut(Schema):
    """A job as the API shows it."""

    id: str
    """The job's id."""
    dataset: str
    """The dataset it builds the next version of."""
    state: str
    """`queued`, `running`, `building`, `succeeded`, `failed` or `cancelled`."""
    created_at: Time
    """When it was submitted."""
    started_at: Time | None
    """When a worker first started it (null while queued)."""
    finished_at: Time | None
    """When it ended (null until then)."""
    error: str | None
    """Why it failed, in one line (null unless failed)."""
    cancel_requested: bool
    """A cancel was asked for; a running job stops within seconds."""
    schedule_id: str | None
    """The schedule that started it, or null."""
    local: bool = Field(
        description="Run by a `harvester crawl` process: service workers never take it."
    )
    progress: Progress
    """Live counters."""
    failures: list[FailureGroup] = Field(
        description="Once the job has ended: its failed and skipped URLs by reason, most "
        "frequent first, with examples."
    )
    snapshot: SnapshotRef | None
    """The snapshot it committed once succeeded (the current version when nothing changed)."""
    counters: dict[str, int]
    """Every counter of the job by slash-path name (`fetch/status/200`,
    `quality/dropped/too_short`, …)."""


class PageOutcome(Schema):
    """One URL's outcome."""

    url: str
    """The URL, canonicalised."""
    depth: int
    """Links followed from a seed to reach it."""
    state: str
    """`pending`, `claimed` (a worker is on it) or `done`."""
    outcome: str | None
    """`fetched`, `not-modified`, `skipped` or `failed` (null until done)."""
    reason: str | None
    """Why it was skipped or failed, e.g. `robots/disallowed`, `connect/refused`."""
    status: int | None
    """The last HTTP status, if an answer came."""
    attempts: int
    """Requests made for it."""
    robots: str | None
    """What robots.txt said: `allowed`, `disallowed`, `unavailable`, `ignored`
    (`respect_robots` off), or null when not asked."""
    proxy: str | None
    """The proxy that fetched it (credentials masked), or null."""
    dropped: str | None
    """The pipeline rule that dropped the page, e.g. `quality/too_short`, or null."""
    fetched_at: Time | None
    """When it was fetched."""


class SnapshotSummary(Schema):
    """One committed version."""

    version: int
    """Version number."""
    parent_version: int | None
    """The version it was built on, or null."""
    created_at: Time
    """When it was committed."""
    rows: int
    """Documents in it."""
    bytes: int
    """Bytes of its data shards."""
    splits: dict[str, int]
    """Documents per split."""


class DatasetOut(Schema):
    """A dataset and its latest version."""

    name: str
    """Dataset name."""
    latest_version: int
    """Its newest version."""
    versions: int
    """How many versions it has."""
    rows: int
    """Documents in the latest version."""
    bytes: int
    """Bytes of the latest version's data shards."""
    created_at: Time
    """When the latest version was committed."""


class DiffOut(Schema):
    """Documents added, removed and changed against the parent version (URLs capped)."""

    dataset: str
    """Dataset name."""
    version: int
    """The version compared."""
    parent_version: int | None
    """The version it is compared with, or null (then everything is added)."""
    counts: dict[str, int]
    """Documents `added`, `removed`, `changed` and `unchanged`."""
    added: list[str]
    """URLs of added documents (at most `limit`)."""
    removed: list[str]
    """URLs of removed documents (at most `limit`)."""
    changed: list[str]
    """URLs of documents whose text changed (at most `limit`)."""


class ScheduleIn(Schema):
    """A new schedule: a cron expression and the job each run submits."""

    model_config = ConfigDict(strict=True, use_attribute_docstrings=True)

    cron: str
    """Five-field cron expression (minute hour day month weekday), e.g. `0 3 * * *`."""
    timezone: str = "UTC"
    """IANA time zone the cron is read in."""
    job: dict[str, Any]
    """The job spec each run submits (as for `POST /v1/jobs`)."""


class SchedulePatch(Schema):
    """Changes to a schedule."""

    model_config = ConfigDict(strict=True, use_attribute_docstrings=True)

    cron: str | None = None
    """A new cron expression."""
    timezone: str | None = None
    """A new time zone."""
    paused: bool | None = None
    """`true` pauses, `false` resumes (missed runs are not replayed)."""
    job: dict[str, Any] | None = None
    """A new job spec."""


class ScheduleOut(Schema):
    """A schedule."""

    id: str
    """The schedule's id."""
    dataset: str
    """The dataset its runs build."""
    cron: str
    """Its cron expression."""
    timezone: str
    """The time zone the cron is read in."""
    paused: bool
    """Whether it is paused."""
    created_at: Time
    """When it was created."""
    next_run_at: Time
    """When it fires next (while not paused)."""
    last_run_at: Time | None
    """When a run last started, by the clock or by a trigger; null before the first."""
    job: dict[str, Any]
    """The job spec each run submits."""
    error: str | None = None
    """Why the scheduler paused it (its stored job spec no longer validates), or null."""


class ProxyOut(Schema):
    """One proxy, credentials masked, with its live state when a job uses the pool."""

    proxy: str
    """The proxy URL with its credentials masked."""
    tier: int
    """Its tier, 0 the cheapest."""
    state: str
    """`ok`, `cooling` (banned by some domain) or `dead`; `idle` when no job uses the pool."""
    banned_domains: list[str]
    """Domains that ban it for now."""


class ProxyPoolOut(Schema):
    """A pool with masked credentials."""

    name: str
    """The pool's name."""
    rotation: str
    """`round_robin` or `least_used`."""
    sticky_per_domain: bool
    """Whether each domain stays on one proxy."""
    cooldown_s: float
    """First rest of a banned or dead proxy."""
    max_cooldown_s: float
    """Longest rest of a banned or dead proxy."""
    proxies: list[ProxyOut]
    """Its proxies, with their live state when a job uses the pool."""


class HostIn(Schema):
    """An operator's policy for one host; every job and worker obeys it."""

    # strict: a JSON `true` or `"5"` is not a number (lax mode would take them as 1 and 5).
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)

    max_rps: Annotated[float | None, Field(gt=0, le=1000)] = None
    """Rate ceiling in requests per second for all jobs together (None: the jobs' own)."""
    concurrency: Annotated[int | None, Field(ge=1, le=256)] = None
    """Requests in flight at once, for all jobs together."""
    blocked: bool = False
    """Never fetch from the host: its URLs end `skipped policy/blocked`."""
    note: Annotated[str | None, Field(max_length=500)] = None
    """Why (shown to other operators)."""


class HostOut(Schema):
    """A host: its policy, the worker crawling it now, and its pending URLs."""

    host: str
    """The host (with its port when not the scheme's default)."""
    max_rps: float | None
    """The operator's rate ceiling, or null."""
    concurrency: int | None
    """The operator's concurrency ceiling, or null."""
    blocked: bool
    """Whether it is never fetched from."""
    note: str | None
    """The operator's note."""
    policy_updated_at: Time | None
    """When the policy last changed."""
    holder: str | None
    """The worker that holds the host's lease now, if any."""
    pending: int
    """URLs of any job waiting for this host."""


class Health(Schema):
    """Liveness."""

    status: str
    """`ok` when the catalog answers."""


class KeyIn(Schema):
    """A new API key."""

    model_config = ConfigDict(strict=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1, max_length=100)
    """What the key is for."""
    scope: Literal["read", "admin"]
    """`read` (GET routes) or `admin` (every route)."""


class KeyOut(Schema):
    """An API key's record; `key` is only present in the answer that created it."""

    id: str
    """The key's id (for revoking it)."""
    name: str
    """What the key is for."""
    scope: str
    """`read` or `admin`."""
    created_at: Time
    """When it was created."""
    revoked_at: Time | None
    """When it was revoked, or null."""
    key: str | None = None
    """The key itself: only in the answer that created it, never again."""


class ErrorDetail(Schema):
    """What went wrong: a stable code, a message and, for validation errors, the fields."""

    code: str
    """Stable machine-readable code: `validation_error`, `not_found`, `unauthorized`, `conflict`,
    `unavailable`, …"""
    message: str
    """What went wrong, for people."""
    details: Any = None
    """For validation errors: `[{field, message}]`."""


class ErrorOut(Schema):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail
    """The error."""


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
