"""Scope rules: which discovered URLs the job may visit."""

from __future__ import annotations

from collections.abc import Iterable

from harvester.crawl.urls import domain_of
from harvester.patterns import compile_pattern
from harvester.spec import Scope


class ScopeRules:
    """Decides whether a canonical URL at a given depth is in scope, and names the rule if not."""

    def __init__(self, scope: Scope, seed_urls: Iterable[str]) -> None:
        domains = scope.allowed_domains or [domain_of(u) for u in seed_urls]
        self._domains = frozenset(d.lower().strip(".") for d in domains)
        self._subdomains = scope.include_subdomains
        self._max_depth = scope.max_depth
        self._include = [compile_pattern(p) for p in scope.include]
        self._exclude = [compile_pattern(p) for p in scope.exclude]

    def allows_domain(self, domain: str) -> bool:
        """True when `domain` is an allowed domain, or a subdomain of one if those are allowed."""
        if domain in self._domains:
            return True
        return self._subdomains and any(domain.endswith("." + d) for d in self._domains)

    def rejection(self, url: str, depth: int) -> str | None:
        """None when in scope, else the reason (`domain`, `depth`, `include`, `exclude`)."""
        if not self.allows_domain(domain_of(url)):
            return "domain"
        if depth > self._max_depth:
            return "depth"
        if self._include and not any(p.search(url) for p in self._include):
            return "include"
        if any(p.search(url) for p in self._exclude):
            return "exclude"
        return None
