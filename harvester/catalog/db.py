"""Engine creation and migrations for SQLite (embedded) and PostgreSQL (deployments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another connection's lock before "database is locked"."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (API, progress) proceed while the crawler writes; NORMAL is durable
    # across process crashes, which is the guarantee we give.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


IDLE_IN_TRANSACTION_MS = 5000


def _postgres_settings(dbapi_conn: Any, _record: Any) -> None:
    # Catalog transactions last milliseconds. One left idle this long belongs to a stalled
    # process (SIGSTOP, a GC pause, a lost network): the server ends it, so the row locks it
    # holds (a host, a job's counters) cannot stop every other worker.
    cursor = dbapi_conn.cursor()
    cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
    cursor.close()
    dbapi_conn.commit()


NETWORK_LIMITS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
"""libpq's limits on a dead network (a partition, a server gone without a reset): a call
fails after about ten seconds instead of waiting for the kernel's retransmissions (~15 min),
so the caller's retry and lease logic take over."""


def make_engine(database_url: str, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """Create an engine; SQLite files get their directory and pragmas, PostgreSQL uses psycopg 3."""
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True, connect_args=NETWORK_LIMITS)
    event.listen(engine, "connect", _postgres_settings)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the catalog schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes starting together (api, workers) migrate one at a time.
            connection.execute(text("SELECT pg_advisory_xact_lock(7240531)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_catalog(database_url: str) -> sessionmaker[Session]:
    """Engine + migrations + a session factory: the one way code gets at the catalog."""
    engine = make_engine(database_url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
