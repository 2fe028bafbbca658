"""A typed client of the REST API, for scripts and the CLI's remote commands.

    with Client("http://127.0.0.1:8000", api_key) as api:
        job = api.submit_job({"dataset": "docs", "seeds": ["https://example.org/"]})
        for job in api.follow(job.id):
            print(job.state, job.progress.fetched)
        api.pull("docs", None, Path("data"))

It is synchronous on purpose: scripts and the CLI make one call at a time, and a blocking
client needs no event loop around it. Every failure is a `ClientError` with the API's stable
error code, or `unreachable` when no answer came.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

from harvester import __version__
from harvester.api.schemas import (
    DatasetOut,
    HostProgress,
    JobOut,
    Page,
    PageOutcome,
    ScheduleOut,
    SnapshotSummary,
)
from harvester.errors import HarvesterError
from harvester.store.layout import CARD, MANIFEST, inside
from harvester.store.manifest import FileEntry, Manifest

T = TypeVar("T")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
_CHUNK = 1 << 20


class ClientError(HarvesterError):
    """The API refused a call (`status`, `code` as in its error body) or could not be reached
    (`status` None, `code` `unreachable`)."""

    def __init__(self, message: str, status: int | None = None, code: str = "unreachable"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Pulled:
    """What `Client.pull` did: the manifest, and how many files it fetched, resumed or found
    already complete."""

    manifest: Manifest
    root: Path
    fetched: int
    resumed: int
    present: int


class Client:
    """The service at `server`, called with `api_key`."""

    def __init__(
        self,
        server: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"harvester-client/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ---- jobs ---------------------------------------------------------------------------

    def submit_job(self, spec: Mapping[str, Any]) -> JobOut:
        """Queue a crawl job (a job spec as in `POST /v1/jobs`)."""
        return self._call(TypeAdapter(JobOut), "POST", "/v1/jobs", json=dict(spec))

    def jobs(
        self,
        state: str | None = None,
        dataset: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[JobOut]:
        """Jobs, newest first."""
        params = _params(state=state, dataset=dataset, limit=limit, offset=offset)
        return self._call(TypeAdapter(Page[JobOut]), "GET", "/v1/jobs", params=params)

    def job(self, job_id: str) -> JobOut:
        """One job with its live progress (and its failures once ended)."""
        return self._call(TypeAdapter(JobOut), "GET", f"/v1/jobs/{job_id}")

    def job_hosts(self, job_id: str) -> list[HostProgress]:
        """The job's progress per host."""
        return self._call(TypeAdapter(list[HostProgress]), "GET", f"/v1/jobs/{job_id}/hosts")

    def cancel_job(self, job_id: str) -> JobOut:
        """Cancel a queued or running job."""
        return self._call(TypeAdapter(JobOut), "POST", f"/v1/jobs/{job_id}/cancel")

    def pages(
        self, job_id: str, outcome: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[PageOutcome]:
        """Per-URL outcomes of a job, in frontier order."""
        params = _params(outcome=outcome, limit=limit, offset=offset)
        path = f"/v1/jobs/{job_id}/pages"
        return self._call(TypeAdapter(Page[PageOutcome]), "GET", path, params=params)

    def follow(self, job_id: str, interval_s: float = 0.5) -> Iterator[JobOut]:
        """The job every `interval_s` until it ends (the last one yielded has ended)."""
        while True:
            job = self.job(job_id)
            yield job
            if job.state in FINISHED:
                return
            time.sleep(interval_s)

    # ---- datasets -----------------------------------------------------------------------

    def datasets(self) -> list[DatasetOut]:
        """Every dataset with its latest version."""
        return self._call(TypeAdapter(list[DatasetOut]), "GET", "/v1/datasets")

    def snapshots(self, name: str) -> list[SnapshotSummary]:
        """A dataset's versions."""
        return self._call(
            TypeAdapter(list[SnapshotSummary]), "GET", f"/v1/datasets/{name}/snapshots"
        )

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        """A version's manifest (`None`: the latest)."""
        return self._call(TypeAdapter(Manifest), "GET", _version_path(name, version))

    def pull(
        self,
        name: str,
        version: int | None,
        target: Path,
        on_file: Callable[[FileEntry, str], None] | None = None,
    ) -> Pulled:
        """Download a version to `target/<name>/v<N>/`, as `harvester datasets download` lays
        it out, verifying every file's sha256 against the manifest.

        Resumable: a complete file already there is kept, a `.part` left by an interrupted
        pull is continued with a Range request, and a file whose bytes do not match is fetched
        again once from the start. `on_file(entry, "fetched" | "resumed" | "present")` is
        called after each file."""
        manifest = self.manifest(name, version)
        base = _version_path(name, manifest.version)
        root = target / name / f"v{manifest.version}"
        counts = {"fetched": 0, "resumed": 0, "present": 0}
        for entry in manifest.files:
            how = self._pull_file(f"{base}/files/{entry.path}", inside(root, entry.path), entry)
            counts[how] += 1
            if on_file is not None:
                on_file(entry, how)
        card = self._request("GET", f"{base}/files/{CARD}")
        inside(root, CARD).write_bytes(card.content)
        inside(root, MANIFEST).write_bytes(manifest.to_json())
        return Pulled(manifest, root, **counts)

    def _pull_file(self, url: str, dest: Path, entry: FileEntry) -> str:
        if dest.exists() and dest.stat().st_size == entry.bytes and _sha256(dest) == entry.sha256:
            return "present"
        partial = dest.with_name(dest.name + ".part")
        have = partial.stat().st_size if partial.exists() else 0
        # Continue what an interrupted pull kept; if those bytes were not this file's, start
        # over once from the first byte.
        for offset in [have, 0] if 0 < have < entry.bytes else [0]:
            self._stream_to(url, partial, offset)
            if partial.stat().st_size == entry.bytes and _sha256(partial) == entry.sha256:
                partial.replace(dest)
                return "resumed" if offset else "fetched"
            partial.unlink()
        raise ClientError(f"{entry.path}: checksum mismatch against the manifest")

    def _stream_to(self, url: str, partial: Path, offset: int) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                # 200 to a Range request: the server sent the whole file, so start afresh.
                mode = "ab" if response.status_code == 206 else "wb"
                with partial.open(mode) as out:
                    # As they arrive: bytes received before a broken connection are kept.
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise _unreachable(self.server, exc) from exc

    # ---- schedules ----------------------------------------------------------------------

    def schedules(self) -> list[ScheduleOut]:
        """Every schedule."""
        return self._call(TypeAdapter(list[ScheduleOut]), "GET", "/v1/schedules")

    def create_schedule(
        self, cron: str, job: Mapping[str, Any], timezone: str = "UTC"
    ) -> ScheduleOut:
        """A schedule running `job` at each time `cron` names (in `timezone`)."""
        body = {"cron": cron, "timezone": timezone, "job": dict(job)}
        return self._call(TypeAdapter(ScheduleOut), "POST", "/v1/schedules", json=body)

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleOut:
        """Change a schedule: `paused`, `cron`, `timezone` or `job`."""
        path = f"/v1/schedules/{schedule_id}"
        return self._call(TypeAdapter(ScheduleOut), "PATCH", path, json=changes)

    def trigger_schedule(self, schedule_id: str) -> JobOut:
        """Queue a run of the schedule now."""
        return self._call(TypeAdapter(JobOut), "POST", f"/v1/schedules/{schedule_id}/trigger")

    # ---- plumbing -----------------------------------------------------------------------

    def _call(self, answer: TypeAdapter[T], method: str, path: str, **kwargs: Any) -> T:
        return answer.validate_json(self._request(method, path, **kwargs).content)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.server, exc) from exc
        _raise_for(response)
        return response


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _version_path(name: str, version: int | None) -> str:
    return f"/v1/datasets/{name}/snapshots/{'latest' if version is None else version}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {response.status_code}"
    raise ClientError(message, response.status_code, code)


def _unreachable(server: str, exc: httpx.TransportError) -> ClientError:
    why = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ClientError(f"cannot reach the API at {server}: {why}")
    return ClientError(f"the connection to the API at {server} failed: {why}")
