"""Every number and list in a job spec that costs resources has an upper bound (review L2):
an out-of-range value is a readable `ConfigurationError` (a 422 through the API)."""

from __future__ import annotations

from typing import Any

import pytest

from harvester.errors import ConfigurationError
from harvester.spec import parse_spec


def _spec(**extra: Any) -> dict[str, Any]:
    return {"dataset": "d", "seeds": ["http://example.org/"], **extra}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"limits": {"max_bytes_per_page": 10**12}}, "max_bytes_per_page"),
        ({"limits": {"max_pages": 10**12}}, "max_pages"),
        ({"retry": {"backoff_max_s": 10**6}}, "backoff_max_s"),
        ({"politeness": {"max_retry_after_s": 86_400}}, "max_retry_after_s"),
        ({"politeness": {"user_agent": "x" * 10_000}}, "user_agent"),
        ({"ban_markers": [f"m{i}" for i in range(101)]}, "ban_markers"),
        ({"scope": {"exclude": ["a"] * 101}}, "exclude"),
        ({"shards": {"max_bytes": 10**12}}, "max_bytes"),
    ],
)
def test_costly_values_are_refused(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        parse_spec(_spec(**extra))


def test_the_defaults_are_within_the_bounds() -> None:
    parse_spec(_spec())
