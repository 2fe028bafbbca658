"""The blob store's contract, the same on local files and on S3 (moto's server): write,
list, read ranges, delete, the commit (a manifest written once, never over another), and a
build that crashed between its files and its manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from harvester.errors import AlreadyExists, NotFound
from harvester.store.blob import BlobStore
from harvester.store.layout import MANIFEST
from harvester.store.snapshots import Snapshots
from tests.conftest import crawl_and_build
from tests.s3server import S3Server
from tests.webtest import SiteServer, SiteState, start


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield BlobStore.from_url(str(tmp_path / "store"))
        return
    server: S3Server = request.getfixturevalue("s3_server")
    yield BlobStore.from_url(f"s3://{server.bucket()}/prefix", server.endpoint)


def test_files_are_written_listed_read_by_range_and_deleted(any_store: BlobStore) -> None:
    data = bytes(range(256)) * 64
    any_store.write_bytes("a/b/one.bin", data)
    any_store.write_bytes("a/two.bin", b"2")
    assert any_store.list("a") == ["a/b/one.bin", "a/two.bin"]
    assert any_store.subdirectories("a") == ["b"]
    assert any_store.read_bytes("a/b/one.bin") == data
    assert any_store.size("a/b/one.bin") == len(data)
    with any_store.open_random("a/b/one.bin") as handle:
        handle.seek(1000)
        assert handle.read(300) == data[1000:1300]
    any_store.write_bytes("a/two.bin", b"two")  # a plain write replaces
    assert any_store.read_bytes("a/two.bin") == b"two"
    any_store.delete("a/two.bin")
    any_store.delete("a/two.bin")  # deleting what is gone is no error
    assert not any_store.exists("a/two.bin")
    with pytest.raises(NotFound):
        any_store.read_bytes("a/two.bin")
    any_store.delete_dir("a")
    assert any_store.list("a") == []
    assert any_store.path("../../escape") == f"{any_store.root}/escape"  # never above the root


def test_a_commit_is_written_once_and_never_over_another(any_store: BlobStore) -> None:
    any_store.create_bytes("datasets/d/v1/manifest.json", b"first")
    with pytest.raises(AlreadyExists):
        any_store.create_bytes("datasets/d/v1/manifest.json", b"second")
    assert any_store.read_bytes("datasets/d/v1/manifest.json") == b"first"
    assert any_store.list("datasets/d/v1") == ["datasets/d/v1/manifest.json"]  # no leftovers


def test_a_version_without_its_manifest_is_invisible_and_the_next_build_replaces_it(
    any_store: BlobStore, sqlite_catalog: sessionmaker[Session]
) -> None:
    """What a build that died before its commit left: files of v1 but no manifest."""
    any_store.write_bytes("datasets/web/v1/data/train-00000-of-00001.parquet", b"half")
    any_store.write_bytes("datasets/web/v1/_buckets/0/000000-000000.parquet", b"half")
    snapshots = Snapshots(any_store)
    assert snapshots.versions("web") == [] and snapshots.latest("web") is None
    site = start(SiteServer("127.0.5.31", SiteState(pages=6, sitemap=False)))
    try:
        spec = {"dataset": "web", "seeds": [site.origin + "/"], "scope": {"sitemaps": False}}
        _, manifest = crawl_and_build(spec, sqlite_catalog, any_store)
    finally:
        site.shutdown()
        site.server_close()
    assert manifest.version == 1 and snapshots.versions("web") == [1]
    stored = set(any_store.list("datasets/web/v1"))
    assert stored == {f"datasets/web/v1/{f.path}" for f in manifest.files} | {
        "datasets/web/v1/README.md",
        f"datasets/web/v1/{MANIFEST}",
    }
    for entry in manifest.files:
        assert any_store.sha256(f"datasets/web/v1/{entry.path}") == entry.sha256
