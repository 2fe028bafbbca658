"""The CLI's remote commands: jobs, schedules and snapshot pulls over the REST API
(`harvester.client`), against `--server` / `HARVESTER_SERVER` with `HARVESTER_API_KEY`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harvester.client import Client, ClientError
from harvester.errors import ConfigurationError, NotFound
from harvester.progressview import ProgressView, outcome_lines, snapshot_lines
from harvester.spec import load_spec_file, parse_spec
from harvester.store.layout import parse_ref
from harvester.store.manifest import FileEntry

console = Console(stderr=True)
DEFAULT_SERVER = "http://127.0.0.1:8000"

Server = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="HARVESTER_SERVER",
        help="The API's base URL. The key comes from HARVESTER_API_KEY.",
        show_default=True,
    ),
]
Follow = Annotated[bool, typer.Option("--follow", help="Show live progress until the job ends.")]


def error(label: str, message: str) -> None:
    """One line on stderr, printed literally: no markup read in it, no wrapping."""
    console.print(Text.assemble((f"{label}:", "red"), " ", message), soft_wrap=True)


@contextmanager
def _api(server: str) -> Iterator[Client]:
    """A client for `server`; an API error ends the command with its message (exit 1, or 2
    for a request the API found invalid)."""
    key = os.environ.get("HARVESTER_API_KEY") or None
    try:
        with Client(server, key) as client:
            yield client
    except ClientError as exc:
        if exc.status == 401:
            hint = "" if key else " (set HARVESTER_API_KEY to a key `harvester serve` printed)"
            error("error", f"{exc}{hint}")
        else:
            error("error", str(exc))
        raise typer.Exit(2 if exc.status in (400, 404, 409, 422) else 1) from exc


def _print_rows(headers: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-separated lines under a header line for scripts."""
    out = Console()
    if out.is_terminal:
        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:
        for row in [headers, *rows]:
            print("\t".join(row))


def spec_data(
    seeds: list[str], dataset: str | None, spec_file: Path | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """A job spec from a file, seeds, a dataset name and `section.key` overrides, validated
    here so a mistake is one clear line before anything is sent or started."""
    data: dict[str, Any] = load_spec_file(spec_file) if spec_file else {}
    if seeds:
        data["seeds"] = seeds
    if dataset:
        data["dataset"] = dataset
    for dotted, value in overrides.items():
        if value is not None:
            section, key = dotted.split(".")
            data.setdefault(section, {})[key] = value
    parse_spec(data)
    return data


def _spec_or_exit(
    seeds: list[str], dataset: str | None, spec_file: Path | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    try:
        return spec_data(seeds, dataset, spec_file, overrides)
    except ConfigurationError as exc:
        error("error", str(exc))
        raise typer.Exit(2) from exc


# ---- jobs ---------------------------------------------------------------------------------

jobs_app = typer.Typer(help="Submit, list, follow and cancel jobs on a service.")

SpecFile = Annotated[
    Path | None, typer.Argument(help="Job spec file (YAML/JSON).", show_default=False)
]
Seeds = Annotated[list[str] | None, typer.Option("--seed", help="A start URL (repeat for more).")]
Dataset = Annotated[str | None, typer.Option(help="Dataset name.")]


@jobs_app.command("submit")
def jobs_submit(
    spec: SpecFile = None,
    seed: Seeds = None,
    dataset: Dataset = None,
    max_pages: Annotated[int | None, typer.Option(help="Stop admitting URLs after N.")] = None,
    rate: Annotated[float | None, typer.Option(help="Requests per second per host.")] = None,
    follow: Follow = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Queue a crawl job from a spec file and/or --seed/--dataset; prints its id."""
    data = _spec_or_exit(
        seed or [],
        dataset,
        spec,
        {"limits.max_pages": max_pages, "politeness.requests_per_second": rate},
    )
    with _api(server) as api:
        job = api.submit_job(data)
        print(job.id, flush=True)
        if follow:
            _follow(api, job.id)


@jobs_app.command("follow")
def jobs_follow(job_id: str, server: Server = DEFAULT_SERVER) -> None:
    """Live progress of a job until it ends; exit 0 only if it succeeded."""
    with _api(server) as api:
        _follow(api, job_id)


def _follow(api: Client, job_id: str) -> None:
    """Follow a job to its end: the live display on a terminal, else a line whenever its
    state or a wait changes; then what it came to. Exit 0 only if it succeeded."""
    view, said = ProgressView(), ""
    try:
        if console.is_terminal:
            with Live(console=console, refresh_per_second=4) as live:
                for job in api.follow(job_id):
                    live.update(view.render(job, api.job_hosts(job_id)))
        else:
            for job in api.follow(job_id, interval_s=1.0):
                line = " · ".join([job.state, *(f"waiting: {w}" for w in job.progress.waiting)])
                if line != said:
                    console.print(Text(line), soft_wrap=True)
                    said = line
    except KeyboardInterrupt:
        console.print(f"stopped following; job {job_id} goes on on the server")
        raise typer.Exit(130) from None
    for line in outcome_lines(job):
        print(line)
    if job.state != "succeeded" or job.snapshot is None:
        error(job.state, job.error or "cancelled")
        raise typer.Exit(1)
    for line in snapshot_lines(api.manifest(job.snapshot.dataset, job.snapshot.version)):
        print(line)


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    dataset: Dataset = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Jobs, newest first: id, state, dataset, fetched, failed, snapshot, created."""
    with _api(server) as api:
        page = api.jobs(state=state, dataset=dataset, limit=limit)
    rows = [
        [
            job.id,
            job.state,
            job.dataset,
            str(job.progress.fetched + job.progress.not_modified),
            str(job.progress.failed),
            f"v{job.snapshot.version}" if job.snapshot else "-",
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        ]
        for job in page.items
    ]
    _print_rows(["id", "state", "dataset", "fetched", "failed", "snapshot", "created"], rows)
    if page.total > len(page.items):
        console.print(f"{len(page.items)} of {page.total} jobs (--limit for more)")


@jobs_app.command("show")
def jobs_show(job_id: str, server: Server = DEFAULT_SERVER) -> None:
    """A job as JSON: state, progress, failures by reason, snapshot."""
    with _api(server) as api:
        print(api.job(job_id).model_dump_json(indent=2))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, server: Server = DEFAULT_SERVER) -> None:
    """Cancel a queued or running job (it keeps its outcomes and builds nothing)."""
    with _api(server) as api:
        job = api.cancel_job(job_id)
    print(f"{job.id} {job.state}{' (cancel requested)' if job.cancel_requested else ''}")


@jobs_app.command("pages")
def jobs_pages(
    job_id: str,
    outcome: Annotated[
        str | None, typer.Option(help="fetched, not-modified, skipped or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many URLs.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Per-URL outcomes, one a line: outcome, reason, HTTP status, attempts, URL."""
    with _api(server) as api:
        page = api.pages(job_id, outcome=outcome, limit=limit, offset=offset)
    for row in page.items:
        status = str(row.status) if row.status is not None else "-"
        print(
            f"{row.outcome or row.state}\t{row.reason or '-'}\t{status}\t{row.attempts}\t{row.url}"
        )


# ---- snapshots ----------------------------------------------------------------------------


def datasets_pull(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@vN or NAME@latest.")],
    target: Annotated[Path, typer.Argument(help="Directory to pull the snapshot into.")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """Download a snapshot from a service to DIR/NAME/vN, verifying every file's sha256;
    run it again after an interruption and it continues where it stopped."""
    try:
        name, version = parse_ref(ref)
    except NotFound as exc:
        error("error", str(exc))
        raise typer.Exit(2) from exc

    def said(entry: FileEntry, how: str) -> None:
        console.print(Text(f"{how} {entry.path} ({entry.bytes} bytes)"), soft_wrap=True)

    with _api(server) as api:
        try:
            pulled = api.pull(name, version, target, on_file=said)
        except OSError as exc:
            error("error", f"cannot write the snapshot under {target}: {exc.strerror or exc}")
            raise typer.Exit(1) from exc
    m = pulled.manifest
    print(
        f"{name}@v{m.version}: {len(m.files)} files verified "
        f"({pulled.fetched} fetched, {pulled.resumed} resumed, {pulled.present} already here)"
    )
    print(pulled.root)


# ---- schedules ----------------------------------------------------------------------------

schedules_app = typer.Typer(help="Recurring refresh crawls on a service.")


@schedules_app.command("list")
def schedules_list(server: Server = DEFAULT_SERVER) -> None:
    """Every schedule: id, dataset, cron, paused, next and last run."""
    with _api(server) as api:
        found = api.schedules()
    rows = [
        [
            s.id,
            s.dataset,
            s.cron,
            s.timezone,
            "yes" if s.paused else "no",
            f"{s.next_run_at:%Y-%m-%d %H:%M}",
            f"{s.last_run_at:%Y-%m-%d %H:%M}" if s.last_run_at else "never",
        ]
        for s in found
    ]
    _print_rows(["id", "dataset", "cron", "timezone", "paused", "next run", "last run"], rows)


@schedules_app.command("create")
def schedules_create(
    cron: Annotated[str, typer.Argument(help='Five-field cron, e.g. "0 3 * * *".')],
    spec: SpecFile = None,
    seed: Seeds = None,
    dataset: Dataset = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the cron.")] = "UTC",
    server: Server = DEFAULT_SERVER,
) -> None:
    """A schedule running a job (spec file and/or --seed/--dataset) at each time CRON names."""
    data = _spec_or_exit(seed or [], dataset, spec, {})
    with _api(server) as api:
        created = api.create_schedule(cron, data, timezone)
    print(created.id)
    console.print(f"next run {created.next_run_at:%Y-%m-%d %H:%M %Z}")


@schedules_app.command("pause")
def schedules_pause(schedule_id: str, server: Server = DEFAULT_SERVER) -> None:
    """Stop firing a schedule until it is resumed."""
    with _api(server) as api:
        print(f"{api.update_schedule(schedule_id, paused=True).id} paused")


@schedules_app.command("resume")
def schedules_resume(schedule_id: str, server: Server = DEFAULT_SERVER) -> None:
    """Fire a paused schedule again, from its next time on (missed runs are not replayed)."""
    with _api(server) as api:
        s = api.update_schedule(schedule_id, paused=False)
    print(f"{s.id} resumed, next run {s.next_run_at:%Y-%m-%d %H:%M %Z}")


@schedules_app.command("trigger")
def schedules_trigger(
    schedule_id: str, follow: Follow = False, server: Server = DEFAULT_SERVER
) -> None:
    """Queue a run now (refused while the previous run goes); prints the job id."""
    with _api(server) as api:
        job = api.trigger_schedule(schedule_id)
        print(job.id, flush=True)
        if follow:
            _follow(api, job.id)
