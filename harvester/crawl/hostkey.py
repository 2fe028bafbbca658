"""The politeness key: the unit a worker leases and one rate controller serves.

One place decides it, so a deployment can choose another key later (the registrable domain,
to be polite to a site's many subdomains together, or the resolved IP, for shared hosting)
without touching the scheduler: every URL's key is stored with it in the frontier.
"""

from __future__ import annotations

from collections.abc import Callable

from harvester.crawl.urls import domain_of

HostKey = Callable[[str], str]


def host_key(url: str) -> str:
    """The default key: the URL's lower-cased host name (ports share a host's budget)."""
    return domain_of(url)
