"""Where a build's per-file steps run: in the build process, or as tasks on a Ray cluster
(`HARVESTER_BUILD_EXECUTOR=ray`, `HARVESTER_RAY_ADDRESS`).

A step is a module-level function of one picklable argument (a file to read, a shard to
write), so both executors run the same code on the same inputs and give the results in the
same order: the same snapshot. What needs every document at once (clusters, splits, the
leakage check) stays in the build process, on ids and signatures only; the texts are read
by the steps, from the blob store both sides can reach."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs a step over items; results in the items' order, each handed over as it is taken,
    so that the caller can store it away before the next one is in its memory."""

    def map(self, step: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """`(step(item) for item in items)`, wherever it runs."""
        ...


@dataclass(frozen=True)
class Local:
    """Every step in the build process, one after the other."""

    def map(self, step: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """`(step(item) for item in items)`."""
        return (step(item) for item in items)


LOCAL = Local()


@dataclass(frozen=True)
class RayCluster:
    """Every step a Ray task. A task whose worker dies (killed, node lost) is run again, up
    to `retries` times: steps write only files of their own, which a rerun overwrites whole."""

    address: str
    retries: int = 3

    def map(self, step: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """The steps as Ray tasks, all submitted at once; each result is fetched from the
        object store when its turn comes."""
        import ray  # only a deployment that chose Ray needs it

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        task = ray.remote(max_retries=self.retries)(step)
        pending = [task.remote(item) for item in items]
        pending.reverse()  # popped from the end, in the items' order
        while pending:
            yield ray.get(pending.pop())


def executor(kind: str, ray_address: str | None) -> Executor:
    """The executor a setting names: `local` or `ray` (which needs the cluster's address)."""
    if kind == "local":
        return LOCAL
    if kind == "ray":
        if not ray_address:
            raise ValueError("HARVESTER_BUILD_EXECUTOR=ray needs HARVESTER_RAY_ADDRESS")
        return RayCluster(ray_address)
    raise ValueError(f"unknown build executor {kind!r} (local or ray)")
