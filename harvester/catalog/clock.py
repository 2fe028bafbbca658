"""The catalog's clock: lease expiry is judged by one clock, the database's, never by the
clocks of the machines that hold the leases (they drift)."""

from __future__ import annotations

from sqlalchemy import Float, literal_column
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def db_now(session: Session) -> ColumnElement[float]:
    """An SQL expression for the catalog server's current time in epoch seconds."""
    if session.get_bind().dialect.name == "postgresql":
        # clock_timestamp, not now(): now() is frozen at the start of the transaction.
        return literal_column("extract(epoch from clock_timestamp())", Float)
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)
