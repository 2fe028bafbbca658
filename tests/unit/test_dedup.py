"""MinHash signatures, LSH candidates, clustering, splits and the leakage check."""

from __future__ import annotations

import random
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasketch import MinHash
from hypothesis import given
from hypothesis import strategies as st

from harvester.build import cluster, grams, leakage
from harvester.build.candidates import Candidates, gather
from harvester.build.executor import LOCAL
from harvester.build.inputs import BuildInput
from harvester.pipeline.minhash import signatures, signatures_of_shingles
from harvester.pipeline.splits import assign
from harvester.pipeline.text import ngram_hashes, word_hashes, words
from harvester.spec import Splits, parse_spec
from harvester.staging import STAGING_SCHEMA
from harvester.store.blob import BlobStore

SPEC = parse_spec({"dataset": "d", "seeds": ["http://e.com/"]})


def _candidates(
    tmp_path: Path, texts: list[str], hashes: list[str] | None = None, urls: list[str] | None = None
) -> tuple[BlobStore, Candidates]:
    """The texts staged as one part (document i at URL http://e.com/i), gathered."""
    store = BlobStore.from_url(str(tmp_path / "store"))
    sigs = signatures(texts, 128, 5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "url": (urls or [])[i] if urls else f"http://e.com/{i}",
            "id": f"id{i:05d}",
            "domain": "e.com",
            "text": text,
            "content_sha256": hashes[i] if hashes else f"h{i}",
            "fetched_at": start,
            "minhash": sigs[i].tolist(),
        }
        for i, text in enumerate(texts)
    ]
    store.write_parquet("staging/part.parquet", pa.Table.from_pylist(rows, schema=STAGING_SCHEMA))
    job = BuildInput(SPEC, ["job"], ["staging/part.parquet"], frozenset(), {})
    return store, gather(store, job, None, _scratch(tmp_path))


def _scratch(tmp_path: Path) -> Path:
    """A fresh directory for a step's local files."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _vocabulary(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("abcdefghijklmnop") for _ in range(7)) for _ in range(n)]


def _variant(words: list[str], changes: int, rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), changes):
        out[i] = rng.choice(vocab)
    return out


def _jaccard(a: list[str], b: list[str], n: int = 5) -> float:
    sa = {tuple(a[i : i + n]) for i in range(len(a) - n + 1)}
    sb = {tuple(b[i : i + n]) for i in range(len(b) - n + 1)}
    return len(sa & sb) / len(sa | sb)


def test_signatures_equal_datasketch_affine32_minhash() -> None:
    text = "the quick brown fox jumps over the lazy dog while the cat sleeps in the sun"
    shingles = ngram_hashes(word_hashes(text), 5)
    reference = MinHash(num_perm=128, scheme="affine32", hashfunc=int)
    reference.update_batch(shingles.tolist())
    ours = signatures_of_shingles([shingles, shingles[:0], shingles[:4]], 128)
    assert np.array_equal(ours[0], reference.hashvalues)
    assert np.all(ours[1] == np.uint32(0xFFFFFFFF))  # no words, no signature
    short = MinHash(num_perm=128, scheme="affine32", hashfunc=int)
    short.update_batch(shingles[:4].tolist())
    assert np.array_equal(ours[2], short.hashvalues)


def test_signature_ignores_case_and_punctuation() -> None:
    a, b = signatures(["Hello, World! This is it.", "hello world this is it"], 64, 3)
    assert np.array_equal(a, b)


def test_near_duplicate_families_cluster_and_strangers_do_not(tmp_path: Path) -> None:
    rng = random.Random(7)
    vocab = _vocabulary(rng, 5000)
    texts: list[list[str]] = []
    family_of: list[int] = []
    for family in range(30):
        base = [rng.choice(vocab) for _ in range(400)]
        texts.append(base)
        family_of.append(family)
        for _ in range(3):  # ~2 changed words in 400: Jaccard of 5-gram sets about 0.95
            texts.append(_variant(base, 2, rng, vocab))
            family_of.append(family)
        far = _variant(base, 60, rng, vocab)  # Jaccard about 0.3: a different document
        assert _jaccard(base, far) < 0.5
        texts.append(far)
        family_of.append(-1 - family)
    store, candidates = _candidates(tmp_path, [" ".join(t) for t in texts])
    rank = np.arange(len(texts), dtype=np.int64)
    labels = cluster.cluster(store, candidates, rank, 0.8, 5, LOCAL, _scratch(tmp_path)).labels
    for i, j in zip(range(len(texts)), labels.tolist(), strict=True):
        assert family_of[i] == family_of[j], "a near-duplicate cluster mixed families"
    members = [i for i, f in enumerate(family_of) if f >= 0]
    assert all(labels[i] == members[(members.index(i) // 4) * 4] for i in members)


def test_representative_is_the_best_ranked_member() -> None:
    groups = np.array([0, 0, 0, 1, 1], dtype=np.int64)
    rank = np.array([5, 1, 3, 0, 9], dtype=np.int64)
    assert cluster.best_by(groups, rank).tolist() == [1, 1, 1, 3, 3]
    hashes = np.array([0, 1, 0, 0], dtype=np.int64)  # "a", "b", "a", "a"
    assert cluster.best_by(hashes, np.array([3, 0, 1, 2])).tolist() == [2, 1, 2, 2]


def test_split_assignment_is_stable_and_follows_ratios() -> None:
    ratios = Splits(train=0.8, validation=0.1, test=0.1)
    got = [assign(f"doc-{i}", "salt", ratios) for i in range(20000)]
    assert got == [assign(f"doc-{i}", "salt", ratios) for i in range(20000)]
    share = {s: got.count(s) / len(got) for s in ("train", "validation", "test")}
    assert abs(share["train"] - 0.8) < 0.02 and abs(share["test"] - 0.1) < 0.01
    assert got != [assign(f"doc-{i}", "other", ratios) for i in range(20000)]


def test_leakage_check_counts_what_crosses_splits(tmp_path: Path) -> None:
    rng = random.Random(3)
    vocab = _vocabulary(rng, 3000)
    base = [rng.choice(vocab) for _ in range(300)]
    other = [rng.choice(vocab) for _ in range(300)]
    texts = [" ".join(base), " ".join(_variant(base, 1, rng, vocab)), " ".join(other)]
    store, candidates = _candidates(tmp_path, texts)
    found = cluster.cluster(store, candidates, np.arange(3), 0.8, 5, LOCAL, _scratch(tmp_path))
    kept = np.arange(3)

    def check(splits: list[str], c: Candidates = candidates) -> leakage.LeakageReport:
        held = grams.collect(store, c, kept[: len(c)], LOCAL, _scratch(tmp_path))
        return leakage.check(c, kept[: len(c)], np.array(splits, object), found.verified, held)

    crossing = check(["train", "test", "train"])
    assert crossing.cross_split_near_duplicates == 1 and not crossing.clean
    assert crossing.test_13gram_in_train > 0.9
    together = check(["test", "test", "train"])
    assert together.clean and together.test_13gram_in_train < 0.05
    _, same_url = _candidates(tmp_path / "u", texts, urls=["u0", "u0", "u2"])
    assert len(same_url) == 2  # one row per URL: the latest staged
    exact = _candidates(tmp_path / "h", texts, hashes=["h0", "h0", "h2"])[1]
    assert check(["train", "test", "test"], exact).cross_split_exact == 1


def test_pairs_inside_a_huge_template_bucket_are_found_and_leakage_sees_them(
    tmp_path: Path,
) -> None:
    """600 pages share a 300-word template (background Jaccard about 0.7, so they fall in one
    LSH bucket of hundreds); 30 near copies are planted among them, far apart."""
    rng = random.Random(11)
    vocab = _vocabulary(rng, 5000)
    template = [rng.choice(vocab) for _ in range(300)]
    docs = [template + [rng.choice(vocab) for _ in range(60)] for _ in range(600)]
    planted = []
    for base in rng.sample(range(600), 30):
        planted.append((base, len(docs)))
        docs.append(_variant(docs[base], 1, rng, vocab))
    assert _jaccard(docs[0], docs[1]) < 0.8 < min(_jaccard(docs[a], docs[b]) for a, b in planted)
    store, candidates = _candidates(tmp_path, [" ".join(d) for d in docs])
    everyone = np.arange(len(docs))
    found = cluster.cluster(store, candidates, everyone, 0.8, 5, LOCAL, _scratch(tmp_path))
    assert all(found.labels[a] == found.labels[b] for a, b in planted)
    assert found.near_duplicates == 30  # and no template sibling was merged
    split = np.array(["train"] * len(docs), object)
    split[[b for _, b in planted]] = "test"
    held = grams.collect(store, candidates, everyone, LOCAL, _scratch(tmp_path))
    report = leakage.check(candidates, everyone, split, found.verified, held)
    assert report.cross_split_near_duplicates == 30


def test_related_documents_are_paired_and_the_rate_follows_the_split(tmp_path: Path) -> None:
    """Excerpts and loose rewrites (Jaccard far below the near-duplicate threshold) are
    related; unrelated pages sharing only a stock phrase, or a gram held by more than
    `MAX_HOLDERS` pages, are not."""
    rng = random.Random(5)
    vocab = _vocabulary(rng, 5000)
    base = [rng.choice(vocab) for _ in range(600)]
    excerpt = base[100:250] + [rng.choice(vocab) for _ in range(300)]
    rewrite = _variant(base, 50, rng, vocab)
    assert _jaccard(base, rewrite) < 0.5
    phrase = [rng.choice(vocab) for _ in range(13)]
    quoting = [[rng.choice(vocab) for _ in range(300)] + phrase for _ in range(2)]
    boiler = [rng.choice(vocab) for _ in range(200)]
    templated = [boiler + [rng.choice(vocab) for _ in range(300)] for _ in range(60)]
    docs = [base, excerpt, rewrite, *quoting, *templated]
    store, candidates = _candidates(tmp_path, [" ".join(d) for d in docs])
    everyone = np.arange(len(docs))
    held = grams.collect(store, candidates, everyone, LOCAL, _scratch(tmp_path))
    pairs = grams.related(held, len(docs), 0.05)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)]
    split = np.array(["train"] * len(docs), object)
    split[1] = "test"
    assert grams.rate_in(held, split, "test", "train") > 0.3
    split[[0, 2]] = "test"
    assert grams.rate_in(held, split, "test", "train") == 0.0
    assert grams.rate_in(held, split, "validation", "train") == 0.0


@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.text())
def test_word_hashes_hash_exactly_the_words(text: str) -> None:
    """The ASCII fast path and the general one give the same tokens (signatures already
    stored depend on them)."""
    expected = [zlib.crc32(word.encode()) for word in words(text)]
    assert word_hashes(text).tolist() == expected
