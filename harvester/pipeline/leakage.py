"""What the leakage check reports, and the n-gram sample its overlap rate is measured on
(`harvester.build.leakage` runs it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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


def sampled(grams: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """The n-grams whose hash is 0 mod 8: an unbiased 1/8 sample, the same in every text."""
    kept: npt.NDArray[np.uint32] = grams[(grams & _SAMPLE_MASK) == 0]
    return kept
