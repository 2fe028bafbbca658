"""The `harvester` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import uvloop
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harvester import __version__
from harvester.config import Settings
from harvester.crawl.proxies import ProxyPool, load_proxies_file
from harvester.demo_site import make_demo_server, serve_demo_site
from harvester.errors import ConfigurationError, NotFound, StorageError
from harvester.remote_cli import (
    console,
    datasets_pull,
    error,
    jobs_app,
    schedules_app,
    spec_data,
)
from harvester.spec import parse_spec
from harvester.store.layout import parse_ref

# The engine's modules (SQLAlchemy, pyarrow, the crawler) load inside the commands that use
# them: the remote commands and --help stay quick.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from harvester.store.snapshots import Snapshots

app = typer.Typer(
    help="Harvester: crawl the web politely and build versioned datasets.\n\n"
    "Local commands (crawl, datasets list/show/download, keys, serve) use the catalog at "
    "HARVESTER_DATABASE_URL (default ./var/harvester.db) and the store at "
    "HARVESTER_STORAGE_URL (default ./var/store), relative to the current directory. Remote "
    "commands (jobs, schedules, datasets pull) talk to --server / HARVESTER_SERVER with "
    "HARVESTER_API_KEY.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(jobs_app, name="jobs", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules", no_args_is_help=True)


def _version(show: bool) -> None:
    if show:
        print(f"harvester {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Harvester: crawl the web politely and build versioned datasets."""


@app.command()
def crawl(
    seeds: Annotated[list[str] | None, typer.Argument(help="Start URLs.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    spec: Annotated[Path | None, typer.Option("--spec", help="Job spec file (YAML/JSON).")] = None,
    max_pages: Annotated[int | None, typer.Option(help="Stop admitting URLs after N.")] = None,
    rate: Annotated[float | None, typer.Option(help="Requests per second per host.")] = None,
    concurrency_per_domain: Annotated[int | None, typer.Option()] = None,
    proxies: Annotated[Path | None, typer.Option(help="Proxies file (YAML/JSON).")] = None,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow loopback/private addresses.")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start a new job even if one can be resumed.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show the live progress table.")] = True,
) -> None:
    """Run one crawl job in this process, then build and commit the dataset's next snapshot.

    The job is catalog state like any other: this process leases the hosts it needs, so a
    `harvester serve` on the same catalog keeps one budget per host with it."""
    settings = Settings()
    try:
        job_spec = parse_spec(
            spec_data(
                seeds or [],
                dataset,
                spec,
                {
                    "limits.max_pages": max_pages,
                    "politeness.requests_per_second": rate,
                    "politeness.concurrency_per_domain": concurrency_per_domain,
                },
            )
        )
        pool = None
        if proxies is not None:
            pools = load_proxies_file(proxies)
            name = job_spec.proxy_pool or "default"
            if name not in pools:
                raise ConfigurationError(f"proxies file has no pool named {name!r}")
            pool = ProxyPool(name, pools[name])
        elif job_spec.proxy_pool:
            raise ConfigurationError(
                f"spec names proxy pool {job_spec.proxy_pool!r}: pass --proxies"
            )
        from harvester.store.blob import BlobStore

        store = BlobStore.from_settings(settings)
    except ConfigurationError as exc:
        error("error", str(exc))
        raise typer.Exit(2) from exc
    from harvester.localcrawl import run_local

    code = run_local(job_spec, pool, settings, store, fresh=fresh, allow_private=allow_private,
                     show=progress and sys.stderr.isatty())  # fmt: skip
    if code:
        raise typer.Exit(code)


datasets_app = typer.Typer(
    help="List, show and download dataset snapshots (pull: from a service).",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")
datasets_app.command("pull")(datasets_pull)


def _snapshots() -> Snapshots:
    from harvester.store.blob import BlobStore
    from harvester.store.snapshots import Snapshots

    return Snapshots(BlobStore.from_settings(Settings()))


@datasets_app.command("list")
def datasets_list() -> None:
    """Every dataset with its latest version, documents and size."""
    settings = Settings()
    snapshots = _snapshots()
    if not snapshots.datasets():
        where = f"no datasets in {settings.storage_url} (HARVESTER_STORAGE_URL)"
        console.print(Text(where), soft_wrap=True)
        return
    table = Table("dataset", "latest", "versions", "documents", "bytes", "created")
    for name in snapshots.datasets():
        manifest = snapshots.manifest(name)
        table.add_row(
            name,
            f"v{manifest.version}",
            str(len(snapshots.versions(name))),
            str(manifest.rows),
            str(manifest.data_bytes),
            f"{manifest.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


@datasets_app.command("show")
def datasets_show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN (latest by default).")],
) -> None:
    """Print a snapshot's manifest (JSON)."""
    try:
        name, version = parse_ref(ref)
        manifest = _snapshots().manifest(name, version)
    except NotFound as exc:
        error("error", str(exc))
        raise typer.Exit(2) from exc
    print(manifest.to_json().decode())


@datasets_app.command("download")
def datasets_download(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN (latest by default).")],
    target: Annotated[Path, typer.Argument(help="Directory to copy the snapshot into.")],
) -> None:
    """Copy a snapshot to DIR/NAME/vN, verifying every file against the manifest."""
    try:
        name, version = parse_ref(ref)
        manifest = _snapshots().download(name, version, target)
    except (NotFound, StorageError) as exc:
        error("error", str(exc))
        raise typer.Exit(2 if isinstance(exc, NotFound) else 1) from exc
    except OSError as exc:  # the target, not the store: a path that cannot be written
        error("error", f"cannot write the snapshot under {target}: {exc.strerror or exc}")
        raise typer.Exit(1) from exc
    print(f"{name}@v{manifest.version}: {len(manifest.files)} files verified")
    print(target / name / f"v{manifest.version}")


keys_app = typer.Typer(
    help="API keys, on the catalog directly (to recover access without a working key).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _catalog() -> sessionmaker[Session]:
    from harvester.catalog.db import open_catalog

    return open_catalog(Settings().database_url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scope: Annotated[str, typer.Option(help="`admin` or `read`.")] = "admin",
) -> None:
    """Create a key and print it (the only time it is shown)."""
    if scope not in ("admin", "read"):
        console.print("[red]error:[/] --scope is `admin` or `read`")
        raise typer.Exit(2)
    from harvester.service.keys import create_key

    key_id, key = create_key(_catalog(), name, "admin" if scope == "admin" else "read")
    print(f"{key_id} {key}")


@keys_app.command("list")
def keys_list() -> None:
    """Every key's record, one a line (never the key): id, scope, created, revoked, name."""
    from harvester.service.keys import list_keys

    for row in list_keys(_catalog()):
        revoked = f"{row.revoked_at:%Y-%m-%dT%H:%M}" if row.revoked_at else "-"
        print(f"{row.id}\t{row.scope}\t{row.created_at:%Y-%m-%dT%H:%M}\t{revoked}\t{row.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key (API processes stop accepting it within seconds)."""
    from harvester.service.keys import revoke_key

    if not revoke_key(_catalog(), key_id):
        error("error", f"no active key {key_id}")
        raise typer.Exit(2)
    print(f"revoked {key_id}")


def _roles(api: bool, worker: bool, scheduler: bool, host: str, port: int) -> None:
    try:
        settings = Settings()
    except ValueError as exc:
        error("error", f"invalid settings: {exc}")
        raise typer.Exit(2) from exc
    from harvester.service.runner import run_roles

    try:
        uvloop.run(
            run_roles(
                settings,
                api=api,
                worker=worker,
                scheduler=scheduler,
                host=host,
                port=port,
                announce=lambda line: print(line, flush=True),
            )
        )
    except ConfigurationError as exc:
        error("error", str(exc))
        raise typer.Exit(2) from exc


Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """API + worker + scheduler in one process (embedded default: SQLite + local files)."""
    _roles(True, True, True, host, port)


@app.command("api")
def api_role(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """The REST API alone."""
    _roles(True, False, False, host, port)


@app.command()
def worker() -> None:
    """A job worker: runs queued jobs (start any number against PostgreSQL)."""
    _roles(False, True, False, "", 0)


@app.command()
def scheduler() -> None:
    """The scheduler: queues each due run of each schedule exactly once."""
    _roles(False, False, True, "", 0)


@app.command()
def migrate() -> None:
    """Bring the catalog's schema up to date and exit (every role also does it at start,
    one process at a time; a deployment runs this first so the roles wait for no one)."""
    _catalog()
    print("catalog schema up to date")


@app.command("demo-site")
def demo_site(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (the Makefile's).")] = 8765,
) -> None:
    """Serve the bundled demo site on loopback (crawl it with --allow-private)."""
    try:
        server = make_demo_server(host, port)
    except OSError as exc:
        error("error", f"cannot serve the demo site on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(2) from exc
    console.print(f"demo site on http://{host}:{port}/ (Ctrl-C to stop)")
    serve_demo_site(server)
