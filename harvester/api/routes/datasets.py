"""`/v1/datasets`: datasets, snapshots, manifests, files (Range, ETag), archives, diffs.

File paths are resolved against the manifest only: a path that is not one of the version's
files is a 404, whatever it contains (`..`, encoded slashes, absolute paths).
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from harvester.api.deps import Reader, Svc
from harvester.api.errors import ApiError
from harvester.api.openapi_errors import raises
from harvester.api.schemas import DatasetOut, DiffOut, SnapshotSummary
from harvester.store.layout import CARD, MANIFEST, version_prefix
from harvester.store.manifest import Manifest
from harvester.store.snapshots import Snapshots

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
_CHUNK = 1 << 20
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")  # 19 digits: any 64-bit offset
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


Name = Annotated[str, Path(pattern=_NAME, description="Dataset name")]
Version = Annotated[str, Path(description="N, vN or latest")]
_VERSION = re.compile(r"^v?([0-9]{1,9})$")


def _version(snapshots: Snapshots, name: str, version: str) -> Manifest:
    if version == "latest":
        return snapshots.manifest(name)
    match = _VERSION.match(version)
    if match is None:
        raise ApiError(404, "not_found", f"no version {version!r} (use N, vN or latest)")
    return snapshots.manifest(name, int(match.group(1)))


def _summary(m: Manifest) -> SnapshotSummary:
    return SnapshotSummary(
        version=m.version,
        parent_version=m.parent_version,
        created_at=m.created_at,
        rows=m.rows,
        bytes=m.data_bytes,
        splits={k: v.rows for k, v in m.splits.items()},
    )


@router.get("")
def list_datasets(svc: Svc, _: Reader) -> list[DatasetOut]:
    """Every dataset with its latest version and sizes."""
    return [_dataset(svc.snapshots, name) for name in svc.snapshots.datasets()]


@router.get("/{name}")
def get_dataset(name: Name, svc: Svc, _: Reader) -> DatasetOut:
    """One dataset."""
    return _dataset(svc.snapshots, name)


def _dataset(snapshots: Snapshots, name: str) -> DatasetOut:
    m = snapshots.manifest(name)
    return DatasetOut(
        name=name,
        latest_version=m.version,
        versions=len(snapshots.versions(name)),
        rows=m.rows,
        bytes=m.data_bytes,
        created_at=m.created_at,
    )


@router.get("/{name}/snapshots")
def list_snapshots(name: Name, svc: Svc, _: Reader) -> list[SnapshotSummary]:
    """Every committed version, oldest first."""
    versions = svc.snapshots.versions(name)
    if not versions:
        raise ApiError(404, "not_found", f"dataset {name!r} has no snapshot")
    return [_summary(svc.snapshots.manifest(name, v)) for v in versions]


@router.get("/{name}/snapshots/{version}", response_model=Manifest)
def manifest(name: Name, version: Version, svc: Svc, _: Reader) -> Response:
    """The manifest of a version (`latest` for the newest)."""
    m = _version(svc.snapshots, name, version)
    return Response(m.to_json(), media_type="application/json")


@router.get("/{name}/snapshots/{version}/diff")
def diff(
    name: Name,
    version: Version,
    svc: Svc,
    _: Reader,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> DiffOut:
    """Documents added, removed and changed against the parent version."""
    m = _version(svc.snapshots, name, version)
    now = svc.snapshots.documents(m, columns=["id", "url", "content_sha256"]).to_pylist()
    before: dict[str, tuple[str, str]] = {}
    if m.parent_version is not None:
        parent = svc.snapshots.manifest(name, m.parent_version)
        cols = ["id", "url", "content_sha256"]
        before = {
            r["id"]: (r["url"], r["content_sha256"])
            for r in svc.snapshots.documents(parent, cols).to_pylist()
        }
    current = {r["id"]: (r["url"], r["content_sha256"]) for r in now}
    added = sorted(u for i, (u, _h) in current.items() if i not in before)
    removed = sorted(u for i, (u, _h) in before.items() if i not in current)
    changed = sorted(u for i, (u, h) in current.items() if i in before and before[i][1] != h)
    return DiffOut(
        dataset=name,
        version=m.version,
        parent_version=m.parent_version,
        counts={
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "unchanged": len(current) - len(added) - len(changed),
        },
        added=added[:limit],
        removed=removed[:limit],
        changed=changed[:limit],
    )


def _file(m: Manifest, path: str) -> tuple[int, str | None]:
    """(size, sha256) of a file the manifest lists (the card and manifest have no sha256)."""
    for entry in m.files:
        if entry.path == path:
            return entry.bytes, entry.sha256
    if path in (CARD, MANIFEST):
        return -1, None
    raise ApiError(404, "not_found", f"version {m.version} has no file {path!r}")


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/{name}/snapshots/{version}/files/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "The file (`ETag`: its sha256 in quotes; `Accept-Ranges: bytes`). "
            "The card is `text/markdown`, the manifest `application/json`.",
            "content": {
                "application/octet-stream": _BINARY,
                "text/markdown": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/Manifest"}},
            },
        },
        206: {
            "description": "The part a `Range: bytes=a-b` asked for (`Content-Range`).",
            "content": {"application/octet-stream": _BINARY},
        },
        304: {"description": "`If-None-Match` names the file's ETag: unchanged."},
        **raises(416),
    },
)
def download_file(
    name: Name, version: Version, path: str, request: Request, svc: Svc, _: Reader
) -> Response:
    """One file of a version, streamed; `ETag` is its sha256; `Range` and `If-None-Match`."""
    m = _version(svc.snapshots, name, version)
    size, sha = _file(m, path)
    blob = f"{version_prefix(name, m.version)}/{path}"
    if size < 0:  # card or manifest: small, served whole
        data = m.to_json() if path == MANIFEST else svc.store.read_bytes(blob)
        return Response(
            data, media_type="application/json" if path == MANIFEST else "text/markdown"
        )
    etag = f'"{sha}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=31536000, immutable",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    start, end = 0, size - 1
    status = 200
    wanted = request.headers.get("range")
    if wanted:
        match = _RANGE.match(wanted.strip())
        if match is None or (not match.group(1) and not match.group(2)):
            raise ApiError(416, "range_not_satisfiable", f"unsupported Range {wanted[:100]!r}")
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start = max(0, size - int(match.group(2)))
        if start >= size or start > end:
            raise ApiError(416, "range_not_satisfiable", f"Range {wanted!r} outside 0-{size - 1}")
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)

    def chunks() -> Iterator[bytes]:
        with svc.store.open_random(blob) as stream:
            stream.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = stream.read(min(_CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    return StreamingResponse(
        chunks(), status_code=status, headers=headers, media_type="application/octet-stream"
    )


@router.get(
    "/{name}/snapshots/{version}/archive",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "A tar stream of `<name>/v<N>/…`: data, index, card and manifest.",
            "content": {"application/x-tar": _BINARY},
        }
    },
)
def archive(name: Name, version: Version, svc: Svc, _: Reader) -> StreamingResponse:
    """The whole version as a tar stream: `<name>/v<N>/…` with data, index, card, manifest."""
    m = _version(svc.snapshots, name, version)
    prefix = version_prefix(name, m.version)
    root = f"{name}/v{m.version}"

    def stream() -> Iterator[bytes]:
        # Written by hand (header, data, padding) so each file streams in chunks.
        for path in [*(f.path for f in m.files), CARD, MANIFEST]:
            blob = f"{prefix}/{path}"
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size = svc.store.size(blob)
            info.mtime = int(m.created_at.timestamp())
            yield info.tobuf(tarfile.PAX_FORMAT)
            with svc.store.open_input(blob) as source:
                while chunk := source.read(_CHUNK):
                    yield chunk
            if info.size % tarfile.BLOCKSIZE:
                yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
        yield b"\0" * (2 * tarfile.BLOCKSIZE)

    headers = {"Content-Disposition": f'attachment; filename="{name}-v{m.version}.tar"'}
    return StreamingResponse(stream(), media_type="application/x-tar", headers=headers)
