"""Migrations when a deployment starts many processes at once on an empty catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import postgres_schema_url


@pytest.mark.postgres
def test_processes_migrating_an_empty_catalog_together_all_succeed_once() -> None:
    """`harvester migrate` four times at once (as compose starts migrate, api, scheduler and
    workers): each waits its turn on the advisory lock, none fails, the schema is made once."""
    harvester = str(Path(sys.executable).with_name("harvester"))
    for url in postgres_schema_url():
        env = os.environ | {"HARVESTER_DATABASE_URL": url}
        runs = [
            subprocess.Popen([harvester, "migrate"], env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outputs = [run.communicate(timeout=90)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0, 0], outputs
        assert all("up to date" in out for out in outputs)
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as connection:
            revisions = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert len(revisions.all()) == 1
        engine.dispose()
