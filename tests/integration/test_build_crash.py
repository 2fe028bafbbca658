"""A build killed at any point leaves the previous state or the complete new version."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from harvester.build.inputs import BuildInput
from harvester.build.process import build as build_version
from harvester.pipeline.document import document_id
from harvester.pipeline.minhash import signatures
from harvester.pipeline.text import content_hash
from harvester.spec import parse_spec
from harvester.staging import STAGING_SCHEMA
from harvester.store.blob import BlobStore
from harvester.store.layout import version_prefix
from harvester.store.snapshots import Snapshots
from tests.webtest import WORDS, prose

SPEC = {"dataset": "crashy", "seeds": ["http://a.test/"], "shards": {"max_bytes": 16 * 1024}}
BUILD = """
import json, sys
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from harvester.build.inputs import BuildInput
from harvester.build.process import build
store = BlobStore.from_url(sys.argv[1])
spec = parse_spec(json.loads(sys.argv[2]))
build(store, BuildInput(spec, ["job"], json.loads(sys.argv[3]), frozenset(), {}), lambda: None)
"""


def _stage(store: BlobStore, docs: int) -> list[str]:
    rng = random.Random(1)
    texts = [prose(rng, 150) + " " + " ".join(rng.sample(WORDS, 8)) for _ in range(docs)]
    urls = [f"http://a.test/doc/{i}" for i in range(docs)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    columns = {
        "url": pa.array(urls),
        "id": pa.array([document_id(u) for u in urls]),
        "domain": pa.array(["a.test"] * docs),
        "text": pa.array(texts),
        "content_sha256": pa.array([content_hash(t) for t in texts]),
        "fetched_at": pa.array([start + timedelta(seconds=i) for i in range(docs)]),
        "minhash": pa.array(list(signatures(texts, 128, 5)), pa.list_(pa.uint32())),
    }
    table = pa.table(
        {f.name: columns.get(f.name, pa.nulls(docs, f.type)) for f in STAGING_SCHEMA},
        schema=STAGING_SCHEMA,
    )
    store.write_parquet("staging/job/part-0.parquet", table)
    return ["staging/job/part-0.parquet"]


def _verify(store: BlobStore, version: int) -> None:
    manifest = Snapshots(store).manifest("crashy", version)
    prefix = version_prefix("crashy", version)
    for entry in manifest.files:
        assert store.sha256(f"{prefix}/{entry.path}") == entry.sha256
    assert store.exists(f"{prefix}/README.md")


@pytest.mark.parametrize("kill_when", ["data/train-00003", "index/minhash.parquet", "README.md"])
def test_killed_build_leaves_no_partial_version(tmp_path: Path, kill_when: str) -> None:
    store = BlobStore.from_url(str(tmp_path / "store"))
    parts = _stage(store, 3000)
    version_dir = Path(store.path(version_prefix("crashy", 1)))
    build = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(tmp_path / "store"), json.dumps(SPEC), json.dumps(parts)]
    )
    deadline = time.monotonic() + 60
    while not list(version_dir.glob(kill_when + "*")) and build.poll() is None:
        assert time.monotonic() < deadline, "the build never reached the kill point"
        time.sleep(0.001)
    build.send_signal(signal.SIGKILL)
    build.wait()
    committed = Snapshots(store).versions("crashy")
    assert committed in ([], [1])  # nothing, or (killed after the commit) the whole version
    if kill_when.startswith("data/"):
        assert committed == []  # hundreds of shards were still to come
    for version in committed:
        _verify(store, version)

    # The next build cleans up any leftovers and commits a complete version.
    manifest = build_version(
        store, BuildInput(parse_spec(SPEC), ["job"], parts, frozenset(), {}), lambda: None
    )
    assert manifest.rows == 3000
    assert Snapshots(store).versions("crashy") == [*committed, manifest.version]
    _verify(store, manifest.version)
