"""The OpenAPI document users read in /docs: every field described, real schemas and media
types, and per route only the errors it can return."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harvester.api.app import create_app
from harvester.config import Settings


@pytest.fixture
def openapi(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/h.db", storage_url=str(tmp_path / "store")
    )
    return create_app(settings).openapi()


def _described(prop: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "description" in prop:
        return True
    # A field typed by a model whose docstring says the same is described by its target.
    ref = prop.get("$ref") or next((s.get("$ref") for s in prop.get("allOf", [])), None)
    return ref is not None and "description" in schemas[ref.rsplit("/", 1)[1]]


def test_every_schema_field_has_a_description(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    bare = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, prop in schema.get("properties", {}).items()
        if not _described(prop, schemas)
    ]
    assert bare == []
    assert "HTTPValidationError" not in schemas  # 422s are documented as what they are


def test_snapshot_routes_declare_their_real_content(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    manifest = paths["/v1/datasets/{name}/snapshots/{version}"]["get"]["responses"]["200"]
    assert manifest["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Manifest"
    }
    assert "leakage" in openapi["components"]["schemas"]["Manifest"]["properties"]
    files = paths["/v1/datasets/{name}/snapshots/{version}/files/{path}"]["get"]["responses"]
    binary = {"type": "string", "format": "binary"}
    assert files["200"]["content"]["application/octet-stream"]["schema"] == binary
    assert files["206"]["content"]["application/octet-stream"]["schema"] == binary
    assert {"304", "416"} <= set(files)
    archive = paths["/v1/datasets/{name}/snapshots/{version}/archive"]["get"]["responses"]
    assert list(archive["200"]["content"]) == ["application/x-tar"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


def test_each_route_lists_only_the_errors_it_can_return(openapi: dict[str, Any]) -> None:
    def errors(path: str, method: str) -> set[str]:
        return {s for s in openapi["paths"][path][method]["responses"] if s >= "400"}

    assert errors("/healthz", "get") == {"422", "500", "503"}
    assert errors("/v1/jobs", "post") == {"400", "401", "403", "413", "422", "429", "500", "503"}
    assert errors("/v1/jobs/{job_id}", "get") == {"401", "404", "422", "500", "503"}
    assert "409" in errors("/v1/jobs/{job_id}/cancel", "post")
    assert "409" in errors("/v1/schedules/{schedule_id}/trigger", "post")
    assert "404" not in errors("/v1/proxy-pools/{name}", "put")  # a PUT creates
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            found = errors(path, method)
            assert "416" not in found or path.endswith("/files/{path}"), (method, path)
            assert "409" not in found or path.endswith(("/cancel", "/trigger")), (method, path)
            for status in found:
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
