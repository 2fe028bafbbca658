"""The one way CPU-heavy work leaves the event loop: a process pool sized to the cores."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_ORPHAN_CHECK_S = 1.0


def _init_worker(parent: int, memory_mb: int | None) -> None:
    exit_with_parent(parent)
    # Extraction is throughput work; the event loop (fetch timing, the API) is latency work
    # and must win the cores when both want them. SCHED_IDLE ranks below every nice level,
    # so this holds in a worker whose loop already runs at the lowest niceness (19).
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    # Import the heavy modules and load the language model before the first page arrives.
    from harvester.pipeline import language, process  # noqa: F401

    language.identify("warm up")
    if memory_mb is not None:
        # A page that needs more than this fails its own call (MemoryError), instead of the
        # OOM killer taking the largest process on the machine.
        grown = address_space() + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (grown, grown))


def address_space() -> int:
    """This process's virtual memory size in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def exit_with_parent(parent: int) -> None:
    """End this process when `parent` is gone: a SIGKILLed parent cannot stop its children,
    and a pool worker holds both ends of its own call queue, so it would never see EOF."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


async def _within(future: Future[T], pid: int, limit: float | None) -> T:
    """The result of `future`, running in process `pid`, or `TimeoutError` once the process
    has spent `limit` CPU seconds on it. CPU time, not wall time: the workers run at idle
    priority, and a page must not fail because the machine was busy with other work."""
    result = asyncio.wrap_future(future)
    if limit is None:
        return await result
    end = _cpu_seconds(pid) + limit
    while (left := end - _cpu_seconds(pid)) > 0:
        # CPU time grows no faster than wall time: waiting `left` seconds cannot overshoot.
        done, _ = await asyncio.wait({result}, timeout=left)
        if done:
            return result.result()
    raise TimeoutError(f"over {limit} s of CPU time")


class _Worker:
    """One process in an executor of its own, so that killing it costs its call only."""

    def __init__(self, memory_mb: int | None) -> None:
        # spawn: forking a process that runs threads (catalog, event loop) is unsafe.
        self.executor = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(), memory_mb),
        )
        self.ready = self.executor.submit(os.getpid)
        """Done when the process has started and warmed up; its pid."""

    def kill(self) -> None:
        if self.ready.done() and self.ready.exception() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.ready.result(), signal.SIGKILL)
        self.executor.shutdown(wait=False, cancel_futures=True)


class CpuPool:
    """Worker processes for extraction, parsing and signatures; `run` awaits one call.

    Each process runs one call at a time in an executor of its own. A call that overruns its
    budget, or whose caller is cancelled, has its process killed and replaced, so a hostile
    page in C code (lexbor, libxml2: no signal handler runs there) costs that page only; a
    process that dies (the OOM killer, a crash in a C extension) is replaced and the call
    retried once. With `memory_mb`, each process may grow by that much beyond its start-up
    size. Calls come from one event loop at a time.
    """

    def __init__(self, workers: int | None = None, memory_mb: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._memory_mb = memory_mb
        self._idle = [_Worker(memory_mb) for _ in range(self.workers)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._free = asyncio.Semaphore(self.workers)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a semaphore belongs to the loop it first waited on
            self._loop, self._free = loop, asyncio.Semaphore(len(self._idle))
        return self._free

    async def run(self, fn: Callable[..., T], *args: Any, kill_after: float | None = None) -> T:
        """`fn(*args)` in a worker process. Past `kill_after` CPU seconds, the process is
        killed and `TimeoutError` raised; a cancelled call kills its process too, so a
        cancel never waits for a parse. `BrokenProcessPool` if the process died twice."""
        try:
            return await self._call(fn, args, kill_after)
        except BrokenProcessPool:
            return await self._call(fn, args, kill_after)

    async def _call(self, fn: Callable[..., T], args: tuple[Any, ...], limit: float | None) -> T:
        free = self._semaphore()
        async with free:
            worker = self._idle.pop()
            future: Future[T] | None = None
            try:
                pid = await asyncio.wrap_future(worker.ready)  # start-up is not the call's time
                future = worker.executor.submit(fn, *args)
                return await _within(future, pid, limit)
            except BrokenProcessPool:
                future = None  # dead already
                worker = self._replace(worker)
                raise
            finally:
                if future is not None and not future.done():  # overran, or was cancelled
                    worker = self._replace(worker)
                self._idle.append(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        return _Worker(self._memory_mb)

    def warm(self) -> None:
        """Wait until every process has started (each imports the pipeline and loads the
        language model), instead of on first use, where start-up would compete with a
        running crawl."""
        for worker in self._idle:
            worker.ready.result()

    def close(self) -> None:
        """Stop the processes (calls in progress are abandoned: their pages were not
        recorded, so they are crawled again)."""
        for worker in self._idle:
            worker.kill()
        self._idle.clear()

    def __enter__(self) -> CpuPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
