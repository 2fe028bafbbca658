"""URL canonicalisation: one canonical form per page, the raw form kept beside it."""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HOST, _MAX_LABEL = 253, 63  # RFC 1035: no such name resolves; the catalog stores 255


class InvalidURL(ValueError):
    """The string is not an http(s) URL we can crawl."""


def canonicalize(url: str, tracking_params: tuple[str, ...] = ()) -> str:
    """Canonical form: w3lib's (sorted query, normalised escapes, no fragment), default port
    dropped, tracking parameters removed. The path's case is kept: servers may care."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise InvalidURL(f"unparseable URL: {exc}") from exc
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidURL(f"not an http(s) URL: {url[:200]!r}")
    if tracking_params and parts.query:
        kept = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not any(fnmatchcase(k, pattern) for pattern in tracking_params)
        ]
        parts = parts._replace(query=urlencode(kept))
    try:
        canonical = urlsplit(canonicalize_url(urlunsplit(parts)))
        port = canonical.port
    except ValueError as exc:
        raise InvalidURL(f"invalid URL: {exc}") from exc
    host = canonical.hostname or ""
    if len(host) > _MAX_HOST or any(len(label) > _MAX_LABEL for label in host.split(".")):
        raise InvalidURL(f"host name longer than DNS allows: {host[:80]}…")
    if port == _DEFAULT_PORTS[canonical.scheme]:
        host = canonical.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        userinfo = canonical.netloc.rpartition("@")[0]
        canonical = canonical._replace(netloc=f"{userinfo}@{host}" if userinfo else host)
    return urlunsplit(canonical)


def domain_of(url: str) -> str:
    """The politeness key of a URL: its lower-cased host name (without port)."""
    return (urlsplit(url).hostname or "").lower()


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, where robots.txt and sitemaps live."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
