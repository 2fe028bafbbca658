"""One HTTP fetch: redirects re-checked hop by hop, limits enforced, errors translated once.

This module is the only place httpx exceptions are seen; everything above it deals in
`FetchResult` and the `FetchError` hierarchy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import httpcore
import httpx

from harvester.crawl.body import ACCEPT_ENCODING, read_limited
from harvester.crawl.charset import decode_html
from harvester.crawl.netguard import GuardedBackend, NamedTunnelBackend, NetworkGuard
from harvester.crawl.proxies import Proxy
from harvester.crawl.urls import InvalidURL, canonicalize
from harvester.errors import (
    FetchError,
    FetchSkipped,
    PermanentFetchError,
    ProxyFailure,
    Redirected,
    TransientFetchError,
)
from harvester.spec import Limits


@dataclass(frozen=True)
class FetchResult:
    """What one successful (2xx or 304) fetch produced."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    etag: str | None
    last_modified: str | None
    body: bytes
    text: str
    encoding: str | None
    fetched_at: datetime
    elapsed: float
    proxy: str | None
    redirects: int

    @property
    def not_modified(self) -> bool:
        """True for a 304 answer to a conditional request."""
        return self.status == 304


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@functools.cache
def _tls(ca_file: str | None) -> ssl.SSLContext:
    # Built once: loading the CA bundle costs ~25 ms, and there is a client per host.
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _guarded_transport(
    guard: NetworkGuard,
    tls: ssl.SSLContext,
    http2: bool,
    limits: httpx.Limits,
    local_address: str | None,
) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(
        verify=tls, http2=http2, limits=limits, trust_env=False, local_address=local_address
    )
    # httpx has no public hook for the network backend; swapping the pool is the supported
    # httpcore way to connect only to addresses the guard has judged.
    transport._pool = httpcore.AsyncConnectionPool(
        http1=True,
        http2=http2,
        ssl_context=tls,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        local_address=local_address,
        network_backend=GuardedBackend(guard),
    )
    return transport


def _proxied_transport(
    proxy_url: str,
    host: str,
    guard: NetworkGuard,
    tls: ssl.SSLContext,
    http2: bool,
    limits: httpx.Limits,
) -> httpx.AsyncHTTPTransport:
    """To `host` through a proxy, built as httpx builds it but connecting through the guard:
    the proxy's own address is judged at every connection, like a destination's."""
    transport = httpx.AsyncHTTPTransport(verify=tls, http2=http2, limits=limits, trust_env=False)
    proxy = httpx.Proxy(proxy_url)
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    common: dict[str, Any] = {
        "ssl_context": tls,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": True,
        "http2": http2,
        "network_backend": NamedTunnelBackend(guard, proxy.url.host, host),
    }
    if proxy.url.scheme in ("socks5", "socks5h"):
        transport._pool = httpcore.AsyncSOCKSProxy(url, proxy.raw_auth, **common)
    else:
        transport._pool = httpcore.AsyncHTTPProxy(url, proxy.raw_auth, proxy.headers.raw, **common)
    return transport


_PORTS = {"http": 80, "https": 443}


def _nothing() -> None:
    """`sent` callback when no politeness applies."""


Hop = Callable[[str], Awaitable[Callable[[], None]]]
HopCheck = Callable[[str], str | None]


class Fetcher:
    """Fetches URLs directly or through a proxy, one `httpx.AsyncClient` per route."""

    def __init__(
        self,
        limits: Limits,
        user_agent: str,
        guard: NetworkGuard,
        *,
        http2: bool = False,
        source_address: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._limits = limits
        self._tls = _tls(ca_file)
        self._source = source_address
        self._guard = guard
        self._http2 = http2
        self._headers = {
            "User-Agent": user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        self._timeout = httpx.Timeout(
            limits.read_timeout_s, connect=limits.connect_timeout_s, pool=None
        )
        self._pool_limits = httpx.Limits(
            max_connections=limits.global_concurrency,
            max_keepalive_connections=limits.global_concurrency,
        )
        # One client per (route, host): httpcore's pool scans all of its connections for every
        # request, so one pool for hundreds of hosts costs O(hosts) per request.
        self._clients: dict[tuple[str | None, str], httpx.AsyncClient] = {}

    def _client(self, proxy: Proxy | None, url: str) -> httpx.AsyncClient:
        key = (proxy.url if proxy else None, (urlsplit(url).hostname or "").lower())
        client = self._clients.get(key)
        if client is None:
            transport = (
                _proxied_transport(
                    proxy.url, key[1], self._guard, self._tls, self._http2, self._pool_limits
                )
                if proxy
                else _guarded_transport(
                    self._guard, self._tls, self._http2, self._pool_limits, self._source
                )
            )
            client = httpx.AsyncClient(
                transport=transport,
                timeout=self._timeout,
                headers=self._headers,
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client."""
        await asyncio.gather(*(c.aclose() for c in self._clients.values()))
        self._clients.clear()

    async def aclose_host(self, host: str) -> None:
        """Close the connections to one host (its lease was given back)."""
        keys = [key for key in self._clients if key[1] == host]
        await asyncio.gather(*(self._clients.pop(key).aclose() for key in keys))

    async def fetch(
        self,
        url: str,
        *,
        proxy: Proxy | None = None,
        headers: dict[str, str] | None = None,
        before_hop: Hop | None = None,
        hop_rejection: HopCheck | None = None,
        same_host: Callable[[str], bool] | None = None,
        content_types: list[str] | None = None,
    ) -> FetchResult:
        """Fetch `url`, following redirects within the limits; raise a `FetchError` otherwise.

        `before_hop(url)` runs before every request (politeness) and outside the time limit:
        waiting for a host's turn is never a timeout. `hop_rejection(url)` names a scope rule
        a redirect target breaks, or None; a target `same_host` refuses ends the fetch with
        `Redirected` (another host's budget must carry it). `content_types` overrides the
        allow-list.
        """
        seen = {url}
        current = url
        budget = self._limits.timeout_s
        types = self._limits.content_types if content_types is None else content_types
        for hop in range(self._limits.max_redirects + 1):
            sent = await before_hop(current) if before_hop is not None else _nothing
            started = time.monotonic()
            try:
                async with asyncio.timeout(budget):
                    target = await self._hop(
                        url, current, proxy, (headers or {}) if hop == 0 else {}, sent, hop, types
                    )
            except TimeoutError as exc:
                sent()
                raise TransientFetchError("timeout/total", "total time limit exceeded") from exc
            budget -= time.monotonic() - started
            if isinstance(target, FetchResult):
                return target
            if target in seen:
                raise PermanentFetchError("redirect/loop", f"redirect loop at {target}")
            rule = hop_rejection(target) if hop_rejection else None
            if rule is not None:
                raise FetchSkipped(f"scope/{rule}", f"redirect to {target} out of scope")
            if same_host is not None and not same_host(target):
                raise Redirected(target)
            seen.add(target)
            current = target
        raise PermanentFetchError("redirect/too-many", f"more than {self._limits.max_redirects}")

    async def _hop(
        self,
        url: str,
        current: str,
        proxy: Proxy | None,
        headers: dict[str, str],
        sent: Callable[[], None],
        hop: int,
        content_types: list[str],
    ) -> FetchResult | str:
        """One request: the result, or the canonical redirect target."""
        address = current
        if proxy is not None:
            address, headers = await self._pinned(current, headers)
        started = time.monotonic()
        client = self._client(proxy, current)
        async with _TranslatedStream(client, address, headers, proxy is not None, sent) as response:
            sent()
            location = response.headers.get("location")
            if response.is_redirect and location:
                try:
                    return canonicalize(urljoin(current, location))
                except InvalidURL as exc:
                    raise PermanentFetchError("redirect/invalid", str(exc)) from exc
            return await self._result(url, current, response, proxy, started, hop, content_types)

    async def _pinned(self, url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        """`url` with its host replaced by an address the guard judged, and the Host header
        that names it. A proxy given the name would resolve it again, and a rebinding DNS
        could then answer with a private address; the name still travels in Host and, inside
        a tunnel, in the TLS handshake (see `NamedTunnelBackend`)."""
        parts = httpx.URL(url)
        addresses = await self._guard.resolve(parts.host, parts.port or _PORTS[parts.scheme])
        pinned = parts.copy_with(host=addresses[0])
        return str(pinned), {**headers, "Host": parts.netloc.decode("ascii")}

    async def _result(
        self,
        url: str,
        final_url: str,
        response: httpx.Response,
        proxy: Proxy | None,
        started: float,
        redirects: int,
        content_types: list[str],
    ) -> FetchResult:
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise TransientFetchError(
                f"status/{status}",
                f"HTTP {status}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status != 304 and not 200 <= status < 300:
            raise PermanentFetchError(f"status/{status}", f"HTTP {status}", status=status)
        content_type = response.headers.get("content-type")
        body, text, encoding = b"", "", None
        if status != 304:
            mime = (content_type or "").split(";")[0].strip().lower()
            if mime and content_types and mime not in content_types:
                raise FetchSkipped("content-type", f"content type {mime}", status=status)
            body = await self._read(response)
            text, encoding = decode_html(body, content_type)
            if not mime and "\x00" in text[:2048]:
                raise FetchSkipped("content-type", "binary body without a content type")
        return FetchResult(
            url=url,
            final_url=final_url,
            status=status,
            content_type=content_type,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            body=body,
            text=text,
            encoding=encoding,
            fetched_at=datetime.now(UTC),
            elapsed=time.monotonic() - started,
            proxy=proxy.masked if proxy else None,
            redirects=redirects,
        )

    async def _read(self, response: httpx.Response) -> bytes:
        try:
            return await read_limited(response, self._limits.max_bytes_per_page)
        except httpx.HTTPError as exc:
            raise _translate(exc, proxied=False) from exc


class _TranslatedStream:
    """`client.stream(...)` whose httpx errors leave as `FetchError`s."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        proxied: bool,
        sent: Callable[[], None],
    ) -> None:
        tunnel = False

        async def trace(event: str, info: dict[str, object]) -> None:
            # Through an HTTP proxy, a tunnel's CONNECT reports the same events first: the
            # host's gap counts from the request itself, sent after the TLS handshake.
            nonlocal tunnel
            if event.endswith("send_request_headers.started"):
                tunnel = getattr(info.get("request"), "method", b"") == b"CONNECT"
            elif event.endswith("send_request_headers.complete") and not tunnel:
                sent()

        self._cm = client.stream("GET", url, headers=headers, extensions={"trace": trace})
        self._proxied = proxied
        self._sent = sent

    async def __aenter__(self) -> httpx.Response:
        try:
            return await self._cm.__aenter__()
        except httpx.HTTPError as exc:
            raise _translate(exc, self._proxied) from exc
        finally:
            self._sent()  # also when connecting failed: the domain's turn must end

    async def __aexit__(self, *exc_info: object) -> None:
        # Closing a broken stream may raise again; the outcome is already decided.
        with contextlib.suppress(httpx.HTTPError):
            await self._cm.__aexit__(*exc_info)  # type: ignore[arg-type]


# What a proxy answers when the destination, not the proxy, failed: a SOCKS5 reply code
# (httpcore names it) or an HTTP CONNECT status.
_DESTINATION_DOWN = {
    "Connection refused": "connect/refused",
    "Host unreachable": "connect/unreachable",
    "Network unreachable": "connect/unreachable",
    "TTL expired": "connect/unreachable",
    "502": "connect/bad-gateway",
    "504": "connect/gateway-timeout",
}


def _proxy_error(message: str) -> FetchError:
    """A proxy's refusal: the destination's failure it reports (retried, the proxy is not
    blamed), or the proxy's own (it is cooled down)."""
    for signal, reason in _DESTINATION_DOWN.items():
        if message.startswith(signal) or f": {signal}." in message:
            return TransientFetchError(reason, f"through the proxy: {message}")
    return ProxyFailure("proxy/error", f"the proxy refused the request: {message}")


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connect/refused",
    errno.EHOSTUNREACH: "connect/unreachable",
    errno.ENETUNREACH: "connect/unreachable",
    errno.ECONNRESET: "connect/reset",
}


def _connect_reason(exc: BaseException) -> str:
    """`connect/refused` and the like, from the OS error under httpx's ConnectError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[seen.errno]
        seen = seen.__cause__ or seen.__context__
    return "connect"


def _translate(exc: httpx.HTTPError, proxied: bool) -> FetchError:
    """The single boundary where httpx exceptions become Harvester's."""
    if isinstance(exc, httpx.ProxyError):
        return _proxy_error(str(exc))
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and proxied:
        return ProxyFailure("proxy/connect", "cannot connect to the proxy")
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.removesuffix("Timeout").lower() or "read"
        return TransientFetchError(f"timeout/{kind}", "timed out")
    if isinstance(exc, httpx.ConnectError):
        return TransientFetchError(_connect_reason(exc), "connection failed")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentFetchError("invalid-url", str(exc))
    if isinstance(exc, httpx.DecodingError):
        return PermanentFetchError("bad-compression", "undecodable body")
    return TransientFetchError("protocol", type(exc).__name__)
