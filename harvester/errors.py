"""The error hierarchy.

    HarvesterError
    ├── ConfigurationError          bad settings, spec or proxies file
    ├── StorageError                catalog or blob store trouble
    │   └── NotFound                no such dataset, version or file
    ├── BuildError                  a snapshot could not be built; nothing was committed
    │   └── LeakageError            duplicates or URLs cross splits
    └── FetchError                  one URL could not be fetched
        ├── TransientFetchError     worth another attempt (timeouts, resets, 5xx, 429)
        │   └── ProxyFailure        the proxy itself failed; retry through another one
        └── PermanentFetchError     final: retrying cannot help
            ├── BlockedDestination  the network guard refused the address
            └── FetchSkipped        kept out on purpose (content type, size, scope)

Every `FetchError` carries a short machine-readable `reason` (a counter suffix such as
`timeout` or `status/503`) so outcomes and retry decisions never parse messages.
"""

from __future__ import annotations


class HarvesterError(Exception):
    """Root of every error Harvester raises on purpose."""


class ConfigurationError(HarvesterError):
    """Settings, a job spec or a proxies file is invalid."""


class StorageError(HarvesterError):
    """The catalog or the blob store failed."""


class NotFound(StorageError):
    """No such dataset, snapshot version or file."""


class BuildError(HarvesterError):
    """A snapshot could not be built; the previous versions are untouched."""


class LeakageError(BuildError):
    """The leakage check found duplicates or URLs in two splits; the snapshot was refused."""


class FetchError(HarvesterError):
    """A URL could not be fetched; `reason` names why."""

    def __init__(self, reason: str, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.status = status


class TransientFetchError(FetchError):
    """A failure another attempt may not repeat; `retry_after` is the server's hint in seconds."""

    def __init__(
        self,
        reason: str,
        message: str = "",
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, message, status=status)
        self.retry_after = retry_after


class ProxyFailure(TransientFetchError):
    """The proxy refused, banned or could not carry the request."""


class PermanentFetchError(FetchError):
    """A final failure: another attempt would end the same way."""


class BlockedDestination(PermanentFetchError):
    """The destination address is loopback, private, link-local, multicast or metadata."""


class FetchSkipped(PermanentFetchError):
    """Not an error of the site: the job chose not to keep this URL (content type, size, scope)."""
