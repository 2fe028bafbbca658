"""Contract: schemathesis drives every route of /openapi.json against a real `harvester api`
process; no answer is a 5xx and every answer matches its documented status, type and schema.

The API role runs alone (no worker), so generated jobs are queued and nothing is fetched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import free_port

HARVESTER = str(Path(sys.executable).with_name("harvester"))
ADMIN = "hv_contract-admin-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    work = tmp_path_factory.mktemp("contract")
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": f"sqlite:///{work}/h.db",
        "HARVESTER_STORAGE_URL": str(work / "store"),
        "HARVESTER_API_KEY": ADMIN,
        "HARVESTER_API_WRITES_PER_MINUTE": "1000000",  # it sends hundreds of writes a minute
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen([HARVESTER, "api", "--port", str(port)], env=env, **quiet)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "api did not start"
            time.sleep(0.1)
    yield schemathesis.openapi.from_url(base + "/openapi.json")
    proc.terminate()
    proc.wait(30)


def test_every_route_keeps_its_contract(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    calls: dict[str, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def keeps_contract(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

        keeps_contract()
    assert set(calls) == {op.label for op in operations}, "a route was never exercised"
    assert sum(calls.values()) >= 5 * len(operations)
