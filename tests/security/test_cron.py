"""Cron input cannot cost the service (review L2, L3): at most one run a minute, a cron that
names no real date is refused with a 422, and catching up after downtime is one step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.config import Settings
from harvester.errors import ConfigurationError
from harvester.service.keys import bootstrap
from harvester.service.scheduler import check_cron, latest_due


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("* * * * * *", "five fields"),  # a seconds field: every second
        ("0 0 31 2 *", "no date"),  # 31 February
        ("not a cron", "five fields"),
    ],
)
def test_costly_or_impossible_crons_are_refused(cron: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        check_cron(cron, "UTC")


def test_a_year_of_missed_minutes_collapses_in_one_step() -> None:
    now = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)
    due = latest_due("* * * * *", "UTC", now - timedelta(days=365), now)
    assert due == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert latest_due("0 3 * * *", "UTC", now - timedelta(hours=1), now) is None


def test_the_api_answers_422_for_an_impossible_cron(
    sqlite_catalog: sessionmaker[Session], tmp_path: Path
) -> None:
    app = create_app(Settings(storage_url=str(tmp_path / "store")), sessions=sqlite_catalog)
    key = bootstrap(sqlite_catalog, None)
    with TestClient(app) as client:
        answer = client.post(
            "/v1/schedules",
            json={"cron": "0 0 31 2 *", "job": {"dataset": "d", "seeds": ["http://a.example/"]}},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "cron"
