"""Process settings from `HARVESTER_*` environment variables (and an optional `.env` file)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the catalog and blob store live, and what the network guard allows."""

    model_config = SettingsConfigDict(env_prefix="HARVESTER_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./var/harvester.db"
    storage_url: str = "./var/store"
    s3_endpoint: str | None = None
    s3_timeout_s: float = 30.0
    """An object-store call that gets no answer for this long fails (and is retried later)."""
    api_key: SecretStr | None = None
    api_writes_per_minute: int = 120
    """Writes (POST, PUT, PATCH, DELETE) one API key may make a minute; more get 429."""
    allow_private_networks: bool = False
    allowed_networks: list[str] = []
    """CIDR ranges crawlable despite the guard, e.g. `["10.20.0.0/16"]` for an intranet."""
    host_lease_s: float = 15.0
    """A host lease lasts this long unless renewed (every second): a dead worker's hosts are
    taken over by the others within it."""
    worker_hosts: int = 512
    """How many hosts one worker leases at most (it takes its fair share of those with work)."""
    pipeline_memory_mb: int = 2048
    """How much memory a pipeline process may take beyond its start-up size: a page that needs
    more fails (`failed pipeline/MemoryError`) instead of the OOM killer picking a process."""
    build_memory_mb: int | None = None
    """How much memory a build process may take beyond its start-up size (unset: no limit).
    A build holds about 1 KB per document (ids, hashes, band keys, clusters, splits) plus
    about 16 MB of texts at a time; signatures, shingle sets and sampled 13-grams go to its
    temporary directory (`TMPDIR`, about 1.7 KB of local disk per document)."""
    build_executor: Literal["local", "ray"] = "local"
    """Where a build's per-file steps (reading texts, verifying pairs, writing shards) run:
    in the build process, or as tasks on the Ray cluster at `ray_address`."""
    ray_address: str | None = None
    """The Ray cluster's address (`host:port` of its head) when `build_executor` is `ray`."""
    build_retry_s: float = 300.0
    """How long a build waits out a catalog or object-store outage (retrying with back-off)
    before its job fails with the error."""
    staging_retention_s: float = 7 * 86_400.0
    """How long a finished job's staging parts (every page as it was fetched) are kept; then
    a worker deletes them (the snapshot holds what was kept)."""
    ca_file: str | None = None
    """PEM file of extra certificate authorities to trust besides certifi's (an intranet's own
    CA)."""
    source_address: str | None = None
    """Local address outgoing crawl connections bind to (a machine with several addresses)."""
    log_format: str = "json"
    """`json` (one object a line, with job id and URL) or `text`."""

    @model_validator(mode="after")
    def _ray_has_an_address(self) -> Settings:
        if self.build_executor == "ray" and not self.ray_address:
            raise ValueError("HARVESTER_BUILD_EXECUTOR=ray needs HARVESTER_RAY_ADDRESS")
        return self
