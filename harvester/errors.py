"""The error hierarchy.

    HarvesterError
    ├── ConfigurationError          bad settings, spec or proxies file
    ├── StorageError                catalog or blob store trouble
    │   ├── NotFound                no such dataset, version or file
    │   └── LeaseLost               a fencing token no longer matches: stop writing
    ├── BuildError                  a snapshot could not be built; nothing was committed
    │   └── LeakageError            duplicates or URLs cross splits
    └── FetchError                  one URL could not be fetched
        ├── TransientFetchError     worth another attempt (timeouts, resets, 5xx, 429)
        │   └── ProxyFailure        the proxy itself failed; retry through another one
        └── PermanentFetchError     final: retrying cannot help
            ├── BlockedDestination  the network guard refused the address
            └── FetchSkipped        kept out on purpose (content type, size, scope)
                └── Redirected      to another host: its own lease holder fetches it

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


class AlreadyExists(StorageError):
    """A file that may be written once (a version's manifest) is already stored."""


class LeaseLost(StorageError):
    """A lease (host, build, dataset) moved to another holder: nothing more may be written
    under it. Raised by the write that checked its fencing token."""


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


class Redirected(FetchSkipped):
    """A redirect to another host: the target joins the frontier, where that host's lease
    holder fetches it within that host's budget."""

    def __init__(self, target: str) -> None:
        super().__init__("redirect/other-host", f"redirected to {target}")
        self.target = target
