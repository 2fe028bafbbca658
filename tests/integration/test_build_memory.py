"""A build of a dataset several times larger than the memory it may use succeeds: the build
process runs in a memory cgroup whose limit is a third of the dataset's text."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harvester.build.inputs import BuildInput
from harvester.build.process import build
from harvester.pipeline.document import document_id
from harvester.spec import parse_spec
from harvester.staging import STAGING_SCHEMA
from harvester.store.blob import BlobStore

LIMIT = 448 * 2**20
PARTS, DOCS_PER_PART, WORDS_PER_DOC = 28, 1000, 1050  # 48-digit words: 1.4 GB of text
SPEC = {
    "dataset": "large",
    "seeds": ["http://large.test/"],
    "shards": {"max_bytes": 64 * 2**20, "row_group_bytes": 8 * 2**20},
}


def _memory_cgroup_root() -> Path:
    """This process's cgroup v1 memory directory, or a skip saying why there is none."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if os.access(root, os.W_OK):
                return root
            pytest.skip(f"the memory cgroup {root} is not writable (needs root)")
    pytest.skip("no cgroup v1 memory controller on this machine")


@contextmanager
def _limited(limit: int) -> Iterator[Path]:
    group = _memory_cgroup_root() / f"harvester-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit))
        yield group
    finally:
        group.rmdir()  # its processes have exited


def _stage(store: BlobStore) -> tuple[list[str], int]:
    """Random documents of long words (cheap to hash, costly to hold), part by part. Random
    texts are near duplicates of nothing, so random signatures and hashes stand for theirs
    (computing them would take minutes)."""
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    paths, text_bytes = [], 0
    for part in range(PARTS):
        texts = []
        for _ in range(DOCS_PER_PART):
            letters = rng.randbytes(WORDS_PER_DOC * 24).hex()
            texts.append(" ".join(letters[i : i + 48] for i in range(0, len(letters), 48)))
        text_bytes += sum(len(t) for t in texts)
        first = part * DOCS_PER_PART
        urls = [f"http://large.test/doc/{first + i}" for i in range(DOCS_PER_PART)]
        columns = {
            "url": pa.array(urls),
            "id": pa.array([document_id(u) for u in urls]),
            "domain": pa.array(["large.test"] * DOCS_PER_PART),
            "text": pa.array(texts),
            "content_sha256": pa.array([rng.randbytes(32).hex() for _ in texts]),
            "fetched_at": pa.array(
                [start + timedelta(seconds=first + i) for i in range(DOCS_PER_PART)]
            ),
            "minhash": pa.array(
                list(np.random.default_rng(part).integers(0, 2**32, (DOCS_PER_PART, 128))),
                pa.list_(pa.uint32()),
            ),
        }
        table = pa.table(
            {f.name: columns.get(f.name, pa.nulls(DOCS_PER_PART, f.type)) for f in STAGING_SCHEMA},
            schema=STAGING_SCHEMA,
        )
        paths.append(f"staging/job/part-{part:03d}.parquet")
        store.write_parquet(paths[-1], table)
    return paths, text_bytes


@pytest.mark.timeout(600)
def test_a_build_three_times_larger_than_its_memory_limit_succeeds(tmp_path: Path) -> None:
    store = BlobStore.from_url(str(tmp_path / "store"))
    parts, text_bytes = _stage(store)
    assert text_bytes >= 3 * LIMIT
    job = BuildInput(parse_spec(SPEC), ["job"], parts, frozenset(), {})
    with _limited(LIMIT) as group, ThreadPoolExecutor(1) as pool:
        built = pool.submit(build, store, job, lambda: None)
        # The build process joins the cgroup as soon as it exists, before it reads anything.
        while not built.done():
            children = [p for p in multiprocessing.active_children() if p.name == "harvester-build"]
            if children:
                (group / "cgroup.procs").write_text(str(children[0].pid))
                break
            time.sleep(0.01)
        manifest = built.result()
        peak = int((group / "memory.max_usage_in_bytes").read_text())
    assert manifest.rows == PARTS * DOCS_PER_PART
    assert peak <= LIMIT
    mib = 2**20
    print(f"text {text_bytes / mib:,.0f} MiB, limit {LIMIT / mib:,.0f}, peak {peak / mib:,.0f}")
