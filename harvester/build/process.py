"""A build runs in a process of its own, so the API and the crawl in the caller never wait on
it and a cancel can stop it at once. The child writes the version's files; the caller keeps
the leases, answers the child's fence checks, and writes the manifest, the commit."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import resource
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from harvester.build.executor import LOCAL, Executor
from harvester.build.inputs import BuildInput
from harvester.build.version import Unchanged, prepare
from harvester.cpu import address_space, exit_with_parent
from harvester.errors import AlreadyExists, BuildError
from harvester.store.blob import BlobStore
from harvester.store.layout import MANIFEST, version_prefix
from harvester.store.manifest import Manifest

logger = logging.getLogger(__name__)
_POLL_S = 0.5
"""How often the caller checks its fence (cancel, lease) while the child works."""


def build(
    store: BlobStore,
    job: BuildInput,
    fence: Callable[[], None],
    *,
    memory_mb: int | None = None,
    now: datetime | None = None,
    executor: Executor = LOCAL,
) -> Manifest:
    """Build and commit the next version of the job's dataset in a child process.

    `fence()` raises when this build may no longer write (lease lost, cancelled); the child
    is then killed. With `memory_mb`, the child may grow by that much beyond its start-up
    size (a larger need fails the build, not the machine). Raises what the child raised
    (`BuildError`, `LeakageError`, `Unchanged`, storage errors)."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    child = context.Process(
        target=_child,
        args=(there, os.getpid(), store, job, memory_mb, now, executor),
        name="harvester-build",
    )
    child.start()
    there.close()
    try:
        manifest = _serve(here, child, fence)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        here.close()
    fence()
    try:
        store.create_bytes(
            f"{version_prefix(manifest.dataset, manifest.version)}/{MANIFEST}", manifest.to_json()
        )
    except AlreadyExists as exc:  # the lease should make this impossible; the store says so
        raise BuildError(
            f"{manifest.dataset} v{manifest.version} was committed by another build"
        ) from exc
    return manifest


def _serve(link: Connection, child: Any, fence: Callable[[], None]) -> Manifest:
    while True:
        if not link.poll(_POLL_S):
            fence()
            if not child.is_alive() and not link.poll():
                raise BuildError(f"the build process died (exit code {child.exitcode})")
            continue
        try:
            kind, value = link.recv()
        except EOFError as exc:
            child.join(5)
            raise BuildError(f"the build process died (exit code {child.exitcode})") from exc
        if kind == "fence":
            try:
                fence()
            except BaseException:
                link.send(False)
                raise
            link.send(True)
        elif kind == "done":
            assert isinstance(value, Manifest)
            return value
        else:
            raise value


def _child(
    link: Connection,
    parent: int,
    store: BlobStore,
    job: BuildInput,
    memory_mb: int | None,
    now: datetime | None,
    executor: Executor,
) -> None:
    # An orphan must not go on writing files a later build of the same version writes too.
    exit_with_parent(parent)
    # Texts pass through file by file. Arrow's default allocator (mimalloc) keeps what it
    # freed, so the process would grow by every file read; jemalloc told to give freed
    # pages back at once stays at what is in use (measured: +160 MB against +0 MB).
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(0)
    if memory_mb is not None:
        grown = address_space() + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (grown, grown))

    def fence() -> None:
        link.send(("fence", None))
        if not link.recv():
            raise BuildError("stopped by the caller")

    try:
        link.send(("done", prepare(store, job, fence, now, executor)))
    except BaseException as exc:  # the caller re-raises it; anything unpicklable as a BuildError
        if not isinstance(exc, BuildError | Unchanged):
            logger.exception("build failed")  # the traceback stays here, in this process
        try:
            pickle.dumps(exc)
        except Exception:
            exc = BuildError(f"{type(exc).__name__}: {exc}")
        link.send(("error", exc))
