"""`/docs` works with no internet: headless Chromium renders Swagger UI from the package's own
assets with every name but loopback unresolvable, and the Bearer scheme gives it "Authorize":
clicking it, typing a key and trying a route out gets that route's answer."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cdp import Browser
from tests.e2e.test_api import ADMIN, Service, run_serve


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    yield from run_serve(tmp_path, f"sqlite:///{tmp_path}/h.db")


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "Debian's chromium is not installed"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_docs_render_offline_with_authorize(service: Service, tmp_path: Path) -> None:
    chromium = _chromium()
    page = httpx.get(service.url + "/docs", timeout=10)
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text  # every asset is ours
    done = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # the network is gone
         "--virtual-time-budget=20000", "--dump-dom", service.url + "/docs"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dom = done.stdout
    assert 'class="swagger-ui' in dom, done.stderr[-2000:]
    assert "opblock" in dom and "/v1/jobs" in dom  # the operations rendered
    assert "authorize" in dom.lower()  # the Bearer scheme's button
    spec = httpx.get(service.url + "/openapi.json", timeout=10).json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["apiKey"]["description"],
    }
    secured = [
        (path, method)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if op.get("security") != [{"apiKey": []}]
    ]
    assert secured == [("/healthz", "get")]  # every route but health asks for the key
    # What "Try it out" sends once authorized: the key as a Bearer token.
    tried = httpx.get(
        service.url + "/v1/jobs", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert tried.status_code == 200 and tried.json()["items"] == []


def test_authorize_and_try_it_out_by_clicks(service: Service, tmp_path: Path) -> None:
    browser = Browser(
        _chromium(),
        tmp_path / "profile",
        ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],  # the network is gone
    )
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=service.url + "/docs")
        browser.click("button.btn.authorize")
        browser.click(".modal-ux input")
        browser.type(ADMIN)
        browser.click(".modal-ux button.authorize")
        browser.click(".modal-ux button.btn-done")
        operation = "#operations-jobs-list_jobs_v1_jobs_get"
        browser.click(f"{operation} .opblock-summary-control")
        browser.click(f"{operation} .try-out__btn")
        browser.click(f"{operation} .btn.execute")
        answered = f"{operation} .live-responses-table tbody .response-col_status"
        browser.wait_for(answered)
        status = browser.js(f"document.querySelector({answered!r}).innerText")
        body = browser.js(f"document.querySelector('{operation} .live-responses-table').innerText")
    finally:
        browser.close()
    assert status.strip() == "200", body  # without the key typed into Authorize: 401
    assert '"items": []' in body and '"total": 0' in body
