"""No input gives a 500 (review L3): a Range header with thousands of digits is a 416."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.config import Settings
from harvester.service.keys import bootstrap
from harvester.store.blob import BlobStore
from tests.conftest import crawl_and_build
from tests.webtest import SiteServer


def test_a_range_with_thousands_of_digits_is_refused_not_a_crash(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], tmp_path: Path
) -> None:
    store = BlobStore.from_url(str(tmp_path / "store"))
    spec = {
        "dataset": "web",
        "seeds": [sites[0].origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 100},
    }
    _, manifest = crawl_and_build(spec, sqlite_catalog, store)
    path = manifest.files[0].path
    app = create_app(Settings(storage_url=str(tmp_path / "store")), sessions=sqlite_catalog)
    key = bootstrap(sqlite_catalog, None)
    url = f"/v1/datasets/web/snapshots/1/files/{path}"
    huge = "9" * 5000
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        assert client.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
        for wanted in (f"bytes={huge}-", f"bytes=-{huge}", f"bytes=0-{huge}"):
            answer = client.get(url, headers={"Range": wanted})
            assert answer.status_code == 416, (wanted[:20], answer.status_code)
            assert huge not in answer.text  # not echoed back either
