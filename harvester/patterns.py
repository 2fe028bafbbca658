"""User-supplied regexes run on RE2, which matches in time linear in the input: a hostile or
careless pattern (`(a+)+$`, `.*?sort=` on a 1 MB URL) cannot stall the crawl (security M1).
RE2 has no backreferences or look-around; such patterns are refused when a spec is read."""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the user, not logged by RE2


def compile_pattern(pattern: str) -> Any:
    """The compiled pattern (`.search(text)`), or ValueError saying why RE2 refuses it."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"invalid regex {pattern!r}: {reason} (RE2 syntax: no backreferences or look-around)"
        ) from exc
