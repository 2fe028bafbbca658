"""Network safety: refuse loopback, private, link-local, multicast and metadata destinations.

The check runs on the addresses a host name resolves to, and the connection is then opened to
exactly the address that passed, so a DNS answer that changes between check and connect
(rebinding) cannot slip a private address through. Numeric host forms (decimal, hex, octal)
resolve to the address they denote, and IPv6 addresses that embed an IPv4 one (mapped, SIIT,
IPv4-compatible, NAT64, 6to4, Teredo) are judged as that IPv4 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Sequence

import httpcore

from harvester.errors import BlockedDestination, TransientFetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud platform endpoints that sit on otherwise routable addresses: AWS (IPv6), Alibaba,
# Oracle, Azure's WireServer; 169.254.169.254 is link-local and refused as such.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192", "168.63.129.16")
)
# IPv6 prefixes that carry an IPv4 address in their low 32 bits: NAT64 (RFC 6052, RFC 8215),
# IPv4-compatible (deprecated) and SIIT (RFC 2765). On a DNS64/NAT64 network, 64:ff9b::a00:5
# reaches 10.0.0.5.
_EMBEDDING = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96")
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it embeds one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:  # 2002::/16
        return ip.sixtofour
    if ip.teredo is not None:  # 2001::/32: (server, client)
        return ip.teredo[1]
    if int(ip) <= 1:  # :: and ::1 are IPv6's own unspecified and loopback addresses
        return None
    if any(ip in network for network in _EMBEDDING):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class NetworkGuard:
    """Judges destination addresses. `allow_private` lifts the guard entirely (tests, demo);
    `allowed_networks` opens only the listed ranges (an intranet, one test host)."""

    def __init__(self, allow_private: bool, allowed_networks: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]

    def refusal(self, address: str) -> str | None:
        """None if the address may be contacted, else the name of the range it falls in."""
        if self.allow_private:
            return None
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
            ip = inner
        if any(ip in network for network in self._allowed):
            return None
        if ip in _METADATA:
            return "metadata"
        if ip.is_loopback:
            return "loopback"
        if ip.is_link_local:
            return "link-local"  # includes 169.254.169.254, the cloud metadata address
        if ip.is_multicast:
            return "multicast"
        if ip.is_private or not ip.is_global:
            return "private"
        return None

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` that pass the guard; raises `BlockedDestination` if none do."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TransientFetchError("dns", f"cannot resolve {host}: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if self.refusal(a) is None]
        if not allowed:
            why = self.refusal(addresses[0]) if addresses else "unresolvable"
            raise BlockedDestination(f"blocked/{why}", f"{host} resolves to a {why} address")
        return allowed


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, judges, then connects to the judged address."""

    def __init__(self, guard: NetworkGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # resolve() never returns an empty list
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("blocked/unix-socket", "unix sockets are never crawled")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class NamedTunnelBackend(GuardedBackend):
    """The backend of a proxy route to one host. Requests name the host's judged address, so
    the proxy is never asked to resolve it (rebinding); TLS inside the tunnel is then made
    in the host's name, so its certificate is checked against the name, not the address."""

    def __init__(self, guard: NetworkGuard, proxy_host: str, host: str) -> None:
        super().__init__(guard)
        self._proxy_host = proxy_host
        self._host = host

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _NamedTLSStream(stream, self._proxy_host, self._host)


class _NamedTLSStream(httpcore.AsyncNetworkStream):
    """A connection to a proxy: a TLS handshake with anyone but the proxy itself is the
    tunnel's, and names the host."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, proxy_host: str, host: str) -> None:
        self._stream = stream
        self._proxy_host = proxy_host
        self._host = host

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if server_hostname != self._proxy_host:
            server_hostname = self._host
        stream = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _NamedTLSStream(stream, self._proxy_host, self._host)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)
