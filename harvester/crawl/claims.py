"""Claims of many hosts in one catalog transaction.

Host runners ask for URLs in bursts: every held host at once when a worker starts, and every
host a flush added links to right after it. One transaction each would queue them behind one
another on the worker's catalog connection (200 hosts ≈ 1.6 s, longer than a polite gap), so
the requests made in one turn of the event loop go to the catalog together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from harvester.crawl.frontier import Claimed, Fenced, JobRef, claim


class Claims:
    """Collects the claims runners ask for and sends them in one `claim` call."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: str,
        jobs: Callable[[], Mapping[str, JobRef]],
        in_catalog: Callable[..., Awaitable[Any]],
    ) -> None:
        self._sessions = sessions
        self._holder = holder
        self._jobs = jobs
        self._in_catalog = in_catalog
        self._asked: dict[str, tuple[int, int, asyncio.Future[list[Claimed]]]] = {}
        self._sending: asyncio.Task[None] | None = None

    async def claim(self, host: str, token: int, per_job: int) -> list[Claimed]:
        """Up to `per_job` pending URLs of each running job on `host`; `Fenced` if the lease
        moved, the catalog's error if it failed."""
        future: asyncio.Future[list[Claimed]] = asyncio.get_running_loop().create_future()
        self._asked[host] = (token, per_job, future)
        if self._sending is None:
            self._sending = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        await asyncio.sleep(0)  # let every runner woken in this turn ask first
        try:
            while self._asked:
                asked, self._asked = self._asked, {}
                try:
                    claimed, lost = await self._in_catalog(
                        claim,
                        self._sessions,
                        self._holder,
                        {host: (token, n) for host, (token, n, _) in asked.items()},
                        self._jobs(),
                    )
                except Exception as exc:  # the catalog's error goes to every asker
                    for _, _, future in asked.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for host, (_, _, future) in asked.items():
                    if future.done():
                        continue  # its runner was cancelled meanwhile
                    if host in lost:
                        future.set_exception(Fenced({host}))
                    else:
                        future.set_result(claimed[host])
        finally:
            self._sending = None
