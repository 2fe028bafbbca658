"""The split policy when published documents become near duplicates across splits
(`docs/dataset-policy.md`): the later one moves to the earlier one's split, recorded as
moved, and the dataset stays buildable; `remove` drops it as a duplicate."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harvester.build.inputs import BuildInput
from harvester.build.process import build
from harvester.pipeline.document import document_id
from harvester.pipeline.minhash import signatures
from harvester.pipeline.splits import assign, default_salt
from harvester.pipeline.text import content_hash
from harvester.spec import parse_spec
from harvester.staging import STAGING_SCHEMA
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.webtest import prose

HALVES = {"train": 0.5, "validation": 0.0, "test": 0.5, "group_by": "url"}


def _url_in(split: str, spec: dict[str, object]) -> str:
    ratios = parse_spec(spec).splits
    salt = default_salt("policy")
    return next(
        url
        for i in range(1000)
        if assign(document_id(url := f"http://p.test/{split}/{i}"), salt, ratios) == split
    )


def _stage(store: BlobStore, name: str, docs: dict[str, str], day: int) -> str:
    texts = list(docs.values())
    sigs = signatures(texts, 128, 5)
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
    rows = [
        {
            "url": url,
            "id": document_id(url),
            "domain": "p.test",
            "text": text,
            "content_sha256": content_hash(text),
            "fetched_at": when,
            "minhash": sig.tolist(),
        }
        for (url, text), sig in zip(docs.items(), sigs, strict=True)
    ]
    path = f"staging/{name}.parquet"
    store.write_parquet(path, pa.Table.from_pylist(rows, schema=STAGING_SCHEMA))
    return path


@pytest.mark.parametrize("action", ["keep", "remove"])
def test_a_published_page_that_becomes_a_near_copy_across_splits(
    tmp_path: Path, action: str
) -> None:
    spec = {
        "dataset": "policy",
        "seeds": ["http://p.test/"],
        "splits": HALVES,
        "pipeline": {"dedup": {"action": action}},
    }
    store = BlobStore.from_url(str(tmp_path / "store"))
    rng = random.Random(4)
    p, q = _url_in("train", spec), _url_in("test", spec)
    q_text = prose(rng, 300)
    first = {p: prose(rng, 300), q: q_text, "http://p.test/other": prose(rng, 300)}
    v1 = build(
        store,
        BuildInput(parse_spec(spec), ["j1"], [_stage(store, "one", first, 0)], frozenset(), {}),
        lambda: None,
    )
    assert v1.splits["train"].rows >= 1 and v1.splits["test"].rows >= 1
    # P is edited into a near copy of Q (one word changed): they now cross splits.
    words = q_text.split()
    words[150] = "edited"
    second = {p: " ".join(words)}
    v2 = build(
        store,
        BuildInput(parse_spec(spec), ["j2"], [_stage(store, "two", second, 1)], frozenset(), {}),
        lambda: None,
    )
    rows = {r["url"]: r for r in Snapshots(store).documents(v2).to_pylist()}
    assert v2.leakage.cross_split_near_duplicates == 0
    assert rows[q]["split"] == "test"  # Q was published first: it keeps its split
    if action == "keep":
        assert rows[p]["split"] == "test" and v2.changes.moved == 1
        assert rows[p]["cluster_id"] == rows[q]["cluster_id"] == document_id(q)
    else:
        assert p not in rows and v2.changes.removed == 1
    assert np.all([r["split"] in ("train", "test") for r in rows.values()])
