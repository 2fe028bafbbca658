"""Deterministic split assignment from a salted hash of a group key."""

from __future__ import annotations

import hashlib

from harvester.spec import Splits

SPLITS = ("train", "validation", "test")


def default_salt(dataset: str) -> str:
    """The salt a dataset gets when its first spec names none."""
    return hashlib.sha256(f"harvester-splits:{dataset}".encode()).hexdigest()[:16]


def assign(group_key: str, salt: str, ratios: Splits) -> str:
    """The split of a group: a uniform draw in [0, 1) from sha256(salt, key) against the ratios."""
    digest = hashlib.sha256(f"{salt}\x00{group_key}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < ratios.train:
        return "train"
    if draw < ratios.train + ratios.validation:
        return "validation"
    return "test" if ratios.test > 0 else ("validation" if ratios.validation > 0 else "train")
