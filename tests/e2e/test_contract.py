"""Contract: schemathesis drives every route of /openapi.json against a real `harvester api`
process; no answer is a 5xx and every answer matches its documented status, type and schema.
Also with data that breaks the schema (each refused with a 4xx), and statefully, following
the schema's links from what a call created (submit → get → cancel; schedule → trigger).

The API role runs alone (no worker), so generated jobs are queued and nothing is fetched.
"""

from __future__ import annotations

import contextlib
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
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
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


def test_data_that_breaks_the_schema_is_refused_with_a_4xx(
    api_schema: schemathesis.BaseSchema,
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    refused: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def refuses(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN}"},
                checks=[not_a_server_error, negative_data_rejection],
            )
            refused[response.status_code] = refused.get(response.status_code, 0) + 1

        with contextlib.suppress(Unsatisfiable):  # nothing to break: no parameters, no body
            refuses()
    # schemathesis judges each answer (`negative_data_rejection`); an unknown query
    # parameter is refused too (a misspelt filter must not pass for no filter).
    assert sum(n for status, n in refused.items() if 400 <= status < 500) >= 5 * len(operations)


def test_call_sequences_along_the_links_keep_the_contract(
    api_schema: schemathesis.BaseSchema,
) -> None:
    machine = api_schema.as_state_machine()
    followed: dict[str, int] = {}

    class Workflow(machine):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"headers": {"Authorization": f"Bearer {ADMIN}"}}

        def validate_response(
            self, response: object, case: schemathesis.Case, **kwargs: object
        ) -> None:
            followed[case.operation.label] = followed.get(case.operation.label, 0) + 1
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=40,
            derandomize=True,  # the same call sequences every run: the asserts below hold
            stateful_step_count=5,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert {"GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel"} <= set(followed), followed
    assert "POST /v1/schedules/{schedule_id}/trigger" in followed, followed
