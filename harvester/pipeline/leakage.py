"""The leakage check run on a snapshot's final rows before it may be committed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harvester.pipeline.dedup import near_pairs
from harvester.pipeline.text import ngram_hashes, word_hashes

OVERLAP_N = 13
_SAMPLE_MASK = np.uint32(0x7)  # n-grams whose hash is 0 mod 8: an unbiased 1/8 sample


@dataclass(frozen=True)
class LeakageReport:
    """Figures recorded in the manifest; the first three must be zero to commit."""

    cross_split_near_duplicates: int
    cross_split_exact: int
    cross_split_urls: int
    test_13gram_in_train: float

    @property
    def clean(self) -> bool:
        """True when no duplicate or URL crosses splits."""
        return not (
            self.cross_split_near_duplicates or self.cross_split_exact or self.cross_split_urls
        )


def _crossing_groups(keys: Sequence[str], splits: Sequence[str]) -> int:
    seen: dict[str, set[str]] = defaultdict(set)
    for key, split in zip(keys, splits, strict=True):
        seen[key].add(split)
    return sum(1 for s in seen.values() if len(s) > 1)


def _sampled_ngrams(texts: Sequence[str]) -> npt.NDArray[np.uint32]:
    if not texts:
        return np.empty(0, dtype=np.uint32)
    grams = np.concatenate([ngram_hashes(word_hashes(t), OVERLAP_N) for t in texts])
    sampled: npt.NDArray[np.uint32] = grams[(grams & _SAMPLE_MASK) == 0]
    return sampled


def ngram_overlap(test_texts: Sequence[str], train_texts: Sequence[str]) -> float:
    """Share of test 13-grams (hash-sampled) that also occur in train."""
    test = _sampled_ngrams(test_texts)
    if len(test) == 0:
        return 0.0
    train = np.unique(_sampled_ngrams(train_texts))
    return float(np.isin(test, train, assume_unique=False).mean())


def check(
    urls: Sequence[str],
    content_hashes: Sequence[str],
    texts: Sequence[str],
    splits: Sequence[str],
    signatures: npt.NDArray[np.uint32],
    threshold: float,
    ngram: int,
) -> LeakageReport:
    """Count duplicates and URLs that cross splits, and the test-in-train n-gram rate."""
    pairs = near_pairs(signatures, threshold, texts, ngram)
    split_arr = np.asarray(splits)
    near = int(np.sum(split_arr[pairs[:, 0]] != split_arr[pairs[:, 1]])) if len(pairs) else 0
    test = [t for t, s in zip(texts, splits, strict=True) if s == "test"]
    train = [t for t, s in zip(texts, splits, strict=True) if s == "train"]
    return LeakageReport(
        cross_split_near_duplicates=near,
        cross_split_exact=_crossing_groups(content_hashes, splits),
        cross_split_urls=_crossing_groups(urls, splits),
        test_13gram_in_train=round(ngram_overlap(test, train), 6),
    )
