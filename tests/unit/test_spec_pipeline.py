"""The pipeline, splits and shards sections of a job spec are validated with clear errors."""

from __future__ import annotations

import pytest

from harvester.errors import ConfigurationError
from harvester.spec import parse_spec

BASE = {"dataset": "d", "seeds": ["http://example.org/"]}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"splits": {"train": 0.9, "validation": 0.2, "test": 0.1}}, "must be 1"),
        ({"splits": {"group_by": "colour"}}, "splits.group_by"),
        ({"pipeline": {"pii": {"email": "shred"}}}, "pipeline.pii.email"),
        ({"pipeline": {"dedup": {"threshold": 1.5}}}, "pipeline.dedup.threshold"),
        ({"pipeline": {"quality": {"min_wrods": 3}}}, "pipeline.quality.min_wrods"),
        ({"shards": {"max_bytes": 10}}, "shards.max_bytes"),
    ],
)
def test_bad_sections_name_the_field(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace(".", r"\.")):
        parse_spec(BASE | section)


def test_defaults_follow_the_design() -> None:
    spec = parse_spec(BASE)
    assert (spec.splits.train, spec.splits.validation, spec.splits.test) == (0.98, 0.01, 0.01)
    assert spec.splits.group_by == "cluster"
    assert (spec.pipeline.dedup.threshold, spec.pipeline.dedup.num_perm) == (0.8, 128)
    assert spec.pipeline.dedup.ngram == 5 and spec.pipeline.quality.languages == ["en"]
    assert spec.shards.max_bytes == 256 * 1024 * 1024
