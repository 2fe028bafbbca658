"""Build benchmark: signatures, LSH + clustering and a whole snapshot build, with dedup quality.

    python bench/build.py [--docs 100000] [--words 480]

Generates `--docs` documents of about 3 KB (random words from a 20k vocabulary) in which
families of near duplicates are planted: 8% of documents are bases with 1-3 close variants
(1-10 words replaced, true Jaccard of word 5-gram sets 0.80-0.99), one borderline variant
(11-20 words replaced, Jaccard about 0.65-0.8) and one distant variant (40-80 words, < 0.6).
Truth is the exact Jaccard of each (base, variant) pair: >= 0.8 must merge, below must not.
Then, in one process (one core):
 1. signatures: text → MinHash (128 perms, 5-grams) in docs/s, next to datasketch's
    `MinHash.bulk` on a sample;
 2. LSH + clustering: candidate pairs, verification and union-find in docs/s; recall of pairs
    with true Jaccard ≥ 0.8 (and ≥ 0.85) and the false-merge rate (documents merged into a
    cluster whose representative is < 0.8 similar to them, or from another family);
 3. whole build: staging parts (as the crawl writes them) → committed snapshot, docs/s;
 4. peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasketch import MinHash

from harvester.crawl.staging import STAGING_SCHEMA
from harvester.pipeline.dedup import cluster_labels, exact_labels, near_pairs
from harvester.pipeline.document import document_id
from harvester.pipeline.minhash import signatures
from harvester.pipeline.text import content_hash, words
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from harvester.store.builder import BuildInput, SnapshotBuilder

NUM_PERM, NGRAM, THRESHOLD = 128, 5, 0.8


def shingle_set(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1)}


def jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb)


def generate(
    n: int, n_words: int, seed: int = 0
) -> tuple[list[str], list[int], list[tuple[int, int, float]]]:
    """Texts, family id per text (-1 for none) and (base, variant, true Jaccard) pairs."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
        for _ in range(20000)
    ]
    texts: list[list[str]] = []
    family: list[int] = []
    truth: list[tuple[int, int, float]] = []
    next_family = 0
    while len(texts) < n:
        base = rng.choices(vocab, k=n_words)
        if rng.random() < 0.08 and len(texts) < n * 0.95:
            fam = next_family
            next_family += 1
            base_index = len(texts)
            texts.append(base)
            family.append(fam)
            for changes in [rng.randint(1, 10) for _ in range(rng.randint(1, 3))] + [
                rng.randint(40, 80)
            ]:
                variant = list(base)
                for i in rng.sample(range(n_words), changes):
                    variant[i] = rng.choice(vocab)
                truth.append((base_index, len(texts), jaccard(base, variant)))
                texts.append(variant)
                family.append(fam)
        else:
            texts.append(base)
            family.append(-1)
    sentences = []
    for tokens in texts[:n]:
        out, i = [], 0
        while i < len(tokens):
            k = 12
            out.append(" ".join(tokens[i : i + k]).capitalize() + ".")
            i += k
        sentences.append(" ".join(out))
    truth = [t for t in truth if t[1] < n]
    return sentences, family[:n], truth


def staging_parts(
    store: BlobStore, texts: list[str], sigs: np.ndarray, part_rows: int = 5000
) -> list[str]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    paths = []
    for p, lo in enumerate(range(0, len(texts), part_rows)):
        hi = min(len(texts), lo + part_rows)
        urls = [f"http://bench{i % 50}.test/doc/{i}" for i in range(lo, hi)]
        columns = {
            "job_id": pa.array(["bench"] * (hi - lo)),
            "url": pa.array(urls),
            "id": pa.array([document_id(u) for u in urls]),
            "domain": pa.array([u.split("/")[2] for u in urls]),
            "text": pa.array(texts[lo:hi]),
            "language": pa.array(["en"] * (hi - lo)),
            "content_sha256": pa.array([content_hash(t) for t in texts[lo:hi]]),
            "fetched_at": pa.array(
                [start + timedelta(seconds=i) for i in range(lo, hi)], pa.timestamp("us", tz="UTC")
            ),
            "minhash": pa.array(list(sigs[lo:hi]), pa.list_(pa.uint32())),
        }
        table = pa.table(
            {f.name: columns.get(f.name, pa.nulls(hi - lo, f.type)) for f in STAGING_SCHEMA},
            schema=STAGING_SCHEMA,
        )
        path = f"staging/bench/part-{p:05d}.parquet"
        store.write_parquet(path, table)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=480)
    args = parser.parse_args()

    t = time.perf_counter()
    texts, family, truth = generate(args.docs, args.words)
    mean_bytes = sum(len(x) for x in texts) / len(texts)
    took = time.perf_counter() - t
    print(f"generated {len(texts)} docs, mean {mean_bytes:.0f} B, {len(truth)} pairs ({took:.1f}s)")

    # 1. signatures
    t = time.perf_counter()
    sigs = signatures(texts, NUM_PERM, NGRAM)
    sig_s = time.perf_counter() - t
    print(f"signatures: {len(texts) / sig_s:,.0f} docs/s (one core, {sig_s:.1f}s)")
    sample = texts[:2000]
    t = time.perf_counter()
    MinHash.bulk(
        [
            [" ".join(w).encode() for w in zip(*(ws[i:] for i in range(NGRAM)), strict=False)]
            for ws in (words(x) for x in sample)
        ],
        num_perm=NUM_PERM,
    )
    rate = len(sample) / (time.perf_counter() - t)
    print(f"  reference: datasketch MinHash.bulk, Python shingling: {rate:,.0f} docs/s")

    # 2. LSH + clustering, and quality against the planted truth
    t = time.perf_counter()
    rank = np.arange(len(texts), dtype=np.int64)
    exact = exact_labels([content_hash(x) for x in texts], rank)
    labels = cluster_labels(
        len(texts),
        np.concatenate(
            [np.stack([np.arange(len(texts)), exact], 1), near_pairs(sigs, THRESHOLD, texts, NGRAM)]
        ),
        rank,
    )
    lsh_s = time.perf_counter() - t
    clusters = len(set(labels.tolist()))
    print(f"LSH + clustering: {len(texts) / lsh_s:,.0f} docs/s ({lsh_s:.1f}s), {clusters} clusters")
    for floor in (0.8, 0.85):
        wanted = [(a, b) for a, b, j in truth if j >= floor]
        found = sum(1 for a, b in wanted if labels[a] == labels[b])
        print(f"  recall at Jaccard >= {floor}: {found / len(wanted):.4f} ({found}/{len(wanted)})")
    true_j = {(a, b): j for a, b, j in truth}
    merged = [i for i in range(len(texts)) if labels[i] != i]
    false = 0
    for i in merged:
        rep = int(labels[i])
        same_family = family[i] >= 0 and family[i] == family[rep]
        if not same_family or true_j.get((rep, i), 0.0) < THRESHOLD:
            false += 1
    share = false / max(1, len(merged))
    print(f"  false merges: {false}/{len(merged)} merged documents = {share:.4%}")
    below = [(a, b) for a, b, j in truth if j < THRESHOLD]
    wrong = sum(1 for a, b in below if labels[a] == labels[b])
    print(f"  pairs below the threshold merged: {wrong}/{len(below)}")

    # 3. whole build from staging parts
    with tempfile.TemporaryDirectory() as work:
        store = BlobStore.from_url(str(Path(work) / "store"))
        parts = staging_parts(store, texts, sigs)
        spec = parse_spec({"dataset": "bench", "seeds": ["http://bench0.test/"]})
        t = time.perf_counter()
        manifest = SnapshotBuilder(store).build(BuildInput(spec, ["bench"], parts, frozenset(), {}))
        build_s = time.perf_counter() - t
        print(
            f"whole build: {len(texts)} docs in {build_s:.1f}s = "
            f"{len(texts) / build_s:,.0f} docs/s → {manifest.rows} rows, "
            f"{len(manifest.files)} files, {manifest.data_bytes / 1e6:.0f} MB; "
            f"near dups removed {manifest.dedup.near_duplicates}, "
            f"test 13-grams in train {manifest.leakage.test_13gram_in_train:.4f}"
        )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
