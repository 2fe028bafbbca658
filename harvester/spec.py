"""The job spec: what to crawl and how, validated once at the edge."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

from harvester.errors import ConfigurationError

DEFAULT_TRACKING_PARAMS = (
    "utm_*",
    "gclid",
    "fbclid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "yclid",
    "igshid",
)
DEFAULT_BAN_MARKERS = (
    "cf-challenge",
    "g-recaptcha",
    "h-captcha",
    "captcha-delivery",
    "Attention Required!",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Section):
    """Which URLs belong to the job."""

    allowed_domains: list[str] = []
    """Hosts the crawl may visit; empty means the seeds' hosts."""
    include_subdomains: bool = True
    max_depth: Annotated[int, Field(ge=0)] = 5
    include: list[str] = []
    """Regexes; when given, a URL must match one."""
    exclude: list[str] = []
    strip_tracking_params: bool = True
    tracking_params: list[str] = list(DEFAULT_TRACKING_PARAMS)
    """Query parameter names dropped from URLs; a trailing `*` matches a prefix."""
    sitemaps: bool = True

    @field_validator("include", "exclude")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return patterns


class Limits(_Section):
    """Per-job and per-page budgets."""

    max_pages: Annotated[int, Field(ge=1)] = 10_000
    max_bytes_per_page: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    read_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    max_redirects: Annotated[int, Field(ge=0, le=30)] = 10
    content_types: list[str] = ["text/html", "application/xhtml+xml"]
    global_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 64


class Politeness(_Section):
    """How hard each domain may be hit."""

    requests_per_second: Annotated[float, Field(gt=0, le=1000)] = 1.0
    concurrency_per_domain: Annotated[int, Field(ge=1, le=256)] = 2
    respect_robots: bool = True
    user_agent: str = "HarvesterBot/1.0 (+https://github.com/harvester)"
    max_retry_after_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    slow_response_s: Annotated[float, Field(gt=0)] = 5.0
    """Responses slower than this count as a latency signal and slow the domain down."""


class Retry(_Section):
    """Retry policy for transient failures."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    backoff_initial_s: Annotated[float, Field(ge=0)] = 0.5
    backoff_max_s: Annotated[float, Field(ge=0)] = 60.0


class JobSpec(_Section):
    """A crawl job; everything but `seeds` and `dataset` has defaults."""

    dataset: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    seeds: Annotated[list[HttpUrl], Field(min_length=1)]
    scope: Scope = Scope()
    limits: Limits = Limits()
    politeness: Politeness = Politeness()
    retry: Retry = Retry()
    proxy_pool: str | None = None
    ban_markers: list[str] = list(DEFAULT_BAN_MARKERS)
    """Body substrings that mark a challenge or captcha page: the proxy is banned for the domain."""
    conditional_requests: bool = True
    """Send If-None-Match / If-Modified-Since when the dataset has seen the URL before."""
    pipeline: dict[str, Any] = {}
    splits: dict[str, Any] = {}
    shards: dict[str, Any] = {}

    def fingerprint(self) -> str:
        """A stable hash of the spec, used to find an unfinished job to resume."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON spec file into a dict (validation happens in `JobSpec`)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read spec {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"spec {path} must be a mapping")
    return data


def parse_spec(data: dict[str, Any]) -> JobSpec:
    """Validate a spec, turning pydantic's errors into one readable `ConfigurationError`."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid job spec: {problems}") from exc
