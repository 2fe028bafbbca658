"""Keys are managed, not accumulated (review M4): rotating HARVESTER_API_KEY revokes the
previous one, and an operator with access to the catalog can create, list and revoke keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from harvester.catalog.db import open_catalog
from harvester.cli import app
from harvester.service.keys import bootstrap, scope_of


def test_rotating_the_configured_key_revokes_the_old_one(
    sqlite_catalog: sessionmaker[Session],
) -> None:
    bootstrap(sqlite_catalog, "hv_first")
    assert scope_of(sqlite_catalog, "hv_first") == "admin"
    bootstrap(sqlite_catalog, "hv_second")
    assert scope_of(sqlite_catalog, "hv_first") is None
    assert scope_of(sqlite_catalog, "hv_second") == "admin"
    bootstrap(sqlite_catalog, "hv_second")  # a restart with the same setting changes nothing
    assert scope_of(sqlite_catalog, "hv_second") == "admin"


def test_the_cli_creates_lists_and_revokes_keys_on_the_catalog(tmp_path: Path) -> None:
    env = {"HARVESTER_DATABASE_URL": f"sqlite:///{tmp_path}/catalog.db"}
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "ops", "--scope", "read"], env=env)
    assert created.exit_code == 0, created.output
    key_id, key = created.output.split()
    sessions = open_catalog(env["HARVESTER_DATABASE_URL"])
    assert scope_of(sessions, key) == "read"
    listed = runner.invoke(app, ["keys", "list"], env=env, terminal_width=200)
    assert key_id in listed.output and "ops" in listed.output and key not in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert scope_of(sessions, key) is None
    again = runner.invoke(app, ["keys", "revoke", key_id], env=env)
    assert again.exit_code == 2
