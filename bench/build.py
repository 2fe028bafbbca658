"""Build benchmark: a whole snapshot build from staging parts, its speed, the build process's
peak memory, and dedup quality against planted near duplicates.

    python bench/build.py [--docs 100000] [--words 480] [--ray]

Three processes, so that what is measured is the build's own memory:
 1. `generate` writes the corpus to disk as staging parts (as the crawl writes them), with
    the planted truth: 8% of documents are bases with 1-3 close variants (1-10 words replaced,
    true Jaccard of word 5-gram sets 0.80-0.99), one borderline variant (11-20 words, about
    0.65-0.8) and one distant variant (40-80 words, < 0.6). Signatures are computed here,
    on every core.
 2. `build` runs `harvester.build.process.build` (the build in a child process, as the
    service runs it) with `dedup.action: keep`, so every document's cluster is in the
    snapshot, and prints docs/s and the peak RSS of the build process and of its caller.
    With `--ray`, the same build runs again with its steps on a local two-node Ray cluster
    (one CPU each, started here), and every file of both snapshots is compared by sha256.
 3. the quality check reads the snapshot's (id, cluster_id) and prints recall of pairs with
    true Jaccard >= 0.8 (and >= 0.85), false merges, and the borderline pairs merged.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harvester.build.executor import LOCAL, RayCluster
from harvester.build.inputs import BuildInput
from harvester.build.process import build
from harvester.pipeline.document import document_id
from harvester.pipeline.minhash import signatures
from harvester.pipeline.text import content_hash
from harvester.spec import parse_spec
from harvester.staging import STAGING_SCHEMA
from harvester.store.blob import BlobStore
from harvester.store.layout import version_prefix
from harvester.store.snapshots import Snapshots

NUM_PERM, NGRAM, THRESHOLD = 128, 5, 0.8
PART_ROWS = 5000
SPEC = {
    "dataset": "bench",
    "seeds": ["http://bench0.test/"],
    "pipeline": {"dedup": {"action": "keep"}},
}


def shingle_set(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1)}


def jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb)


def generate_part(
    args: tuple[int, int, int],
) -> tuple[list[str], list[int], list[tuple[int, int, float]]]:
    """Documents [first, first + count): texts, family per text (-1: none) and (base,
    variant, true Jaccard) pairs; families never straddle two parts."""
    first, count, n_words = args
    rng = random.Random(first)
    vocab_rng = random.Random(0)
    vocab = [
        "".join(
            vocab_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(vocab_rng.randint(3, 9))
        )
        for _ in range(20000)
    ]
    texts: list[list[str]] = []
    family: list[int] = []
    truth: list[tuple[int, int, float]] = []
    while len(texts) < count:
        base = rng.choices(vocab, k=n_words)
        variants = [rng.randint(1, 10) for _ in range(rng.randint(1, 3))]
        variants += [rng.randint(11, 20), rng.randint(40, 80)]
        if rng.random() < 0.08 and len(texts) + 1 + len(variants) <= count:
            base_index = first + len(texts)
            texts.append(base)
            family.append(base_index)
            for changes in variants:
                variant = list(base)
                for i in rng.sample(range(n_words), changes):
                    variant[i] = rng.choice(vocab)
                truth.append((base_index, first + len(texts), jaccard(base, variant)))
                texts.append(variant)
                family.append(base_index)
        else:
            texts.append(base)
            family.append(-1)
    sentences = []
    for tokens in texts:
        out = [" ".join(tokens[i : i + 12]).capitalize() + "." for i in range(0, len(tokens), 12)]
        sentences.append(" ".join(out))
    return sentences, family, truth


def write_part(args: tuple[str, int, int, int]) -> tuple[list[int], list[tuple[int, int, float]]]:
    root, number, first, n_words = args
    texts, family, truth = generate_part((first, PART_ROWS, n_words))
    sigs = signatures(texts, NUM_PERM, NGRAM)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = len(texts)
    urls = [f"http://bench{i % 50}.test/doc/{i}" for i in range(first, first + n)]
    columns = {
        "job_id": pa.array(["bench"] * n),
        "url": pa.array(urls),
        "id": pa.array([document_id(u) for u in urls]),
        "domain": pa.array([u.split("/")[2] for u in urls]),
        "text": pa.array(texts),
        "language": pa.array(["en"] * n),
        "content_sha256": pa.array([content_hash(t) for t in texts]),
        "fetched_at": pa.array(
            [start + timedelta(seconds=i) for i in range(first, first + n)],
            pa.timestamp("us", tz="UTC"),
        ),
        "minhash": pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1)), NUM_PERM).cast(
            pa.list_(pa.uint32())
        ),
    }
    table = pa.table(
        {f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in STAGING_SCHEMA},
        schema=STAGING_SCHEMA,
    )
    BlobStore.from_url(root).write_parquet(f"staging/bench/part-{number:05d}.parquet", table)
    return family, truth


def generate(root: Path, docs: int, n_words: int) -> None:
    store = str(root / "store")
    tasks = [(store, p, p * PART_ROWS, n_words) for p in range((docs + PART_ROWS - 1) // PART_ROWS)]
    started = time.perf_counter()
    families: list[int] = []
    truth: list[tuple[int, int, float]] = []
    with multiprocessing.get_context("spawn").Pool() as pool:
        for family, pairs in pool.imap(write_part, tasks):
            families += family
            truth += pairs
    np.save(root / "family.npy", np.asarray(families, np.int64))
    np.save(root / "truth.npy", np.asarray(truth, np.float64).reshape(-1, 3))
    took = time.perf_counter() - started
    print(
        f"generated {len(families):,} docs in {len(tasks)} parts, "
        f"{len(truth):,} planted pairs ({took:.0f} s)"
    )


def run_build(root: Path, ray_address: str | None) -> None:
    store = BlobStore.from_url(str(root / "store"))
    parts = store.list("staging/bench")
    job = BuildInput(parse_spec(SPEC), ["bench"], parts, frozenset(), {})
    executor = RayCluster(ray_address) if ray_address else LOCAL
    started = time.perf_counter()
    manifest = build(store, job, lambda: None, executor=executor)
    took = time.perf_counter() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    caller = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = sum(f.bytes for f in manifest.files)
    print(
        f"build: {manifest.rows:,} docs in {took:.1f} s = {manifest.rows / took:,.0f} docs/s; "
        f"{len(manifest.files)} files, {data / 1e6:,.0f} MB; peak RSS of the build process "
        f"{child:,.0f} MiB (its caller {caller:,.0f} MiB)"
    )
    print(
        f"  near duplicates {manifest.dedup.near_duplicates:,}, verified pairs "
        f"{manifest.dedup.verified_pairs:,}; related pairs {manifest.leakage.related_pairs:,}; "
        f"13-grams in train of test {manifest.leakage.test_13gram_in_train:.4f}, of "
        f"validation {manifest.leakage.validation_13gram_in_train or 0:.4f}"
    )
    print(json.dumps({"seconds": took, "rss_mib": child}))


def quality(root: Path) -> None:
    store = BlobStore.from_url(str(root / "store"))
    snapshots = Snapshots(store)
    manifest = snapshots.manifest("bench", snapshots.latest("bench"))
    prefix = version_prefix("bench", manifest.version)
    table = pa.concat_tables(
        pq.read_table(store.path(f"{prefix}/{f.path}"), columns=["url", "id", "cluster_id"])
        for f in manifest.files
        if f.split
    )
    index = np.asarray([int(u.rsplit("/", 1)[1]) for u in table.column("url").to_pylist()])
    ids = np.empty(len(index), object)
    clusters = np.empty(len(index), object)
    ids[index] = table.column("id").to_pylist()
    clusters[index] = table.column("cluster_id").to_pylist()
    family = np.load(root / "family.npy")
    truth = np.load(root / "truth.npy")
    a, b, j = truth[:, 0].astype(np.int64), truth[:, 1].astype(np.int64), truth[:, 2]
    same = clusters[a] == clusters[b]
    for floor in (0.8, 0.85):
        wanted = j >= floor
        found = f"{same[wanted].sum():,}/{wanted.sum():,}"
        print(f"  recall at Jaccard >= {floor}: {same[wanted].mean():.4f} ({found})")
    true_j = {(int(x), int(y)): z for x, y, z in zip(a, b, j, strict=True)}
    rep_of = {doc_id: i for i, doc_id in enumerate(ids)}
    merged = np.flatnonzero(clusters != ids)
    false = 0
    for i in merged.tolist():
        rep = rep_of[clusters[i]]
        if family[i] < 0 or family[i] != family[rep] or true_j.get((rep, i), 0.0) < THRESHOLD:
            false += 1
    print(f"  false merges: {false}/{len(merged):,} merged documents")
    below = j < THRESHOLD
    print(f"  pairs below the threshold merged: {same[below].sum():,}/{below.sum():,}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=480)
    parser.add_argument("--stage", choices=["generate", "build", "quality"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--ray-address", help="build stage: run the steps on this Ray cluster")
    parser.add_argument("--ray", action="store_true", help="also build on a local Ray cluster")
    args = parser.parse_args()
    if args.stage == "generate":
        generate(args.dir, args.docs, args.words)
    elif args.stage == "build":
        run_build(args.dir, args.ray_address)
    elif args.stage == "quality":
        quality(args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-build-") as work:
            for stage in ("generate", "build", "quality"):
                command = [sys.executable, __file__, "--stage", stage, "--dir", work]
                subprocess.run(
                    [*command, "--docs", str(args.docs), "--words", str(args.words)], check=True
                )
            if args.ray:
                on_ray(Path(work))


def on_ray(work: Path) -> None:
    """The build stage again on a two-node Ray cluster; both snapshots compared file by file."""
    datasets = work / "store" / "datasets"
    datasets.rename(work / "local")
    ray = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={work / 'ray'}"]
    subprocess.run([ray, "start", "--head", "--port=6391", *common], check=True)
    try:
        subprocess.run([ray, "start", "--address=127.0.0.1:6391", *common], check=True)
        command = [sys.executable, __file__, "--stage", "build", "--dir", str(work)]
        subprocess.run([*command, "--ray-address", "127.0.0.1:6391"], check=True)
    finally:
        subprocess.run([ray, "stop", "--force"], check=True)
    local = json.loads((work / "local" / "bench" / "v1" / "manifest.json").read_text())
    remote = json.loads((datasets / "bench" / "v1" / "manifest.json").read_text())
    same = [f["sha256"] for f in local["files"]] == [f["sha256"] for f in remote["files"]]
    print(f"ray and local snapshots identical (every file's sha256): {same}")


if __name__ == "__main__":
    main()
