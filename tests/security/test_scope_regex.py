"""Scope regexes run on RE2 (review M1): catastrophic patterns match in linear time, and
patterns RE2 cannot run are refused with the reason when the spec is read."""

from __future__ import annotations

import pytest

from harvester.crawl.scope import ScopeRules
from harvester.errors import ConfigurationError
from harvester.spec import parse_spec


def _spec(**scope: object) -> dict[str, object]:
    return {"dataset": "d", "seeds": ["http://example.org/"], "scope": scope}


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    spec = parse_spec(_spec(exclude=["(a+)+$", ".*\\?.*sort="]))
    rules = ScopeRules(spec.scope, ["http://example.org/"])
    # With backtracking, 40 a's already take hours; RE2 reads a megabyte once.
    hostile = "http://example.org/" + "a" * 1_000_000 + "!"
    assert rules.rejection(hostile, 0) is None
    assert rules.rejection("http://example.org/list?x=1&sort=asc", 0) == "exclude"


def test_patterns_re2_cannot_run_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match="look-around"):
        parse_spec(_spec(include=["(?<=/)private"]))
    with pytest.raises(ConfigurationError, match="RE2"):
        parse_spec(_spec(exclude=["(a)\\1"]))
