"""Strangers cost the API nothing: a request with a body and no valid key is refused before
the body is read, and bodies over 1 MiB are refused however they are sent (review H5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.api.bodyguard import MAX_BODY_BYTES
from harvester.config import Settings
from harvester.service.keys import bootstrap

ADMIN: dict[str, str] = {}


@pytest.fixture
def client(sqlite_catalog: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(storage_url=str(tmp_path / "store")), sessions=sqlite_catalog)
    ADMIN["Authorization"] = f"Bearer {bootstrap(sqlite_catalog, None)}"
    with TestClient(app) as client:
        yield client


def test_a_body_without_a_key_is_refused_before_it_is_parsed(client: TestClient) -> None:
    answer = client.post("/v1/jobs", content=b"{not json")
    assert answer.status_code == 401  # not 422: the body was never parsed
    assert answer.json()["error"]["code"] == "unauthorized"
    wrong = client.post(
        "/v1/jobs", content=b"{not json", headers={"Authorization": "Bearer hv_nope"}
    )
    assert wrong.status_code == 401


def test_a_large_body_is_refused_with_or_without_a_declared_length(client: TestClient) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    declared = client.post("/v1/jobs", content=big, headers=ADMIN)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to trust
        for _ in range(4):
            yield b" " * (MAX_BODY_BYTES // 2)

    streamed = client.post("/v1/jobs", content=chunks(), headers=ADMIN)
    assert streamed.status_code == 413
    strangers = client.post("/v1/jobs", content=big)
    assert strangers.status_code == 401  # the key is checked first


def test_a_small_body_with_a_key_goes_through(client: TestClient) -> None:
    answer = client.post("/v1/jobs", json={"dataset": "d", "seeds": []}, headers=ADMIN)
    assert answer.status_code == 422  # parsed and validated as before
    assert answer.json()["error"]["code"] == "validation_error"


def test_a_key_that_writes_too_fast_gets_429(
    sqlite_catalog: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings(storage_url=str(tmp_path / "store"), api_writes_per_minute=3)
    app = create_app(settings, sessions=sqlite_catalog)
    first = {"Authorization": f"Bearer {bootstrap(sqlite_catalog, None)}"}
    with TestClient(app) as client:
        made = client.post("/v1/keys", json={"name": "b", "scope": "admin"}, headers=first)
        second = {"Authorization": f"Bearer {made.json()['key']}"}
        answers = [client.post("/v1/jobs", json={}, headers=first).status_code for _ in range(3)]
        assert answers == [422, 422, 429]  # the key's third write this minute (one made `b`)
        limited = client.post("/v1/jobs", json={}, headers=first)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "20"
        assert limited.json()["error"]["code"] == "too_many_requests"
        assert client.post("/v1/jobs", json={}, headers=second).status_code == 422  # its own
        assert client.get("/v1/jobs", headers=first).status_code == 200  # reads are not limited
