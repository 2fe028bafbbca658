"""The CPU pool survives a worker process killed for real (SIGKILL, as the OOM killer does)."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest

from harvester.cpu import CpuPool


def _die() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def _square(n: int) -> int:
    return n * n


def test_a_killed_worker_costs_its_call_only() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> list[int]:
            assert await pool.run(_square, 3) == 9
            with pytest.raises(BrokenProcessPool):
                await pool.run(_die)  # killed twice: on the first pool and on the retry
            return [await pool.run(_square, n) for n in range(5)]

        assert asyncio.run(go()) == [0, 1, 4, 9, 16]  # every later call works
        assert pool.replaced == 2
    finally:
        pool.close()


def test_a_call_meeting_a_worker_killed_from_outside_is_retried() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> int:
            worker = await pool.run(os.getpid)
            os.kill(worker, signal.SIGKILL)  # as the OOM killer would, between two calls
            return await pool.run(_square, 7)

        assert asyncio.run(go()) == 49
        assert pool.replaced == 1  # the call met the broken pool and went to a fresh one
    finally:
        pool.close()
