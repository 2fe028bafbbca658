"""Per-dataset leases in the catalog: one snapshot build per dataset at a time, across
processes and machines. A lease expires unless renewed, so a crashed holder frees it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import DatasetLease
from harvester.errors import StorageError

TTL = timedelta(seconds=60)
_RENEW_S = 10.0
_POLL_S = 0.5


def _try_acquire(sessions: sessionmaker[Session], dataset: str, holder: str) -> bool:
    now = datetime.now(UTC)
    try:
        with sessions.begin() as session:
            session.add(DatasetLease(dataset=dataset, holder=holder, expires_at=now + TTL))
        return True
    except IntegrityError:
        pass
    with sessions.begin() as session:
        result = session.execute(
            update(DatasetLease)
            .where(
                DatasetLease.dataset == dataset,
                or_(DatasetLease.expires_at < now, DatasetLease.holder == holder),
            )
            .values(holder=holder, expires_at=now + TTL)
        )
    return getattr(result, "rowcount", 0) == 1


@contextlib.contextmanager
def dataset_lease(
    sessions: sessionmaker[Session], dataset: str, holder: str, wait_s: float = 3600.0
) -> Iterator[None]:
    """Hold the dataset's lease for the block, renewing it; waits while another holds it."""
    deadline = time.monotonic() + wait_s
    while not _try_acquire(sessions, dataset, holder):
        if time.monotonic() > deadline:
            raise StorageError(f"dataset {dataset!r} is locked by another build")
        time.sleep(_POLL_S)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(_RENEW_S):
            with sessions.begin() as session:
                session.execute(
                    update(DatasetLease)
                    .where(DatasetLease.dataset == dataset, DatasetLease.holder == holder)
                    .values(expires_at=datetime.now(UTC) + TTL)
                )

    renewer = threading.Thread(target=renew, daemon=True, name=f"lease-{dataset}")
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        with sessions.begin() as session:
            session.execute(
                delete(DatasetLease).where(
                    DatasetLease.dataset == dataset, DatasetLease.holder == holder
                )
            )
