"""Where a request may go: every resolved address is checked, and the connection is pinned to it.

The check happens inside the HTTP client's network backend, at the moment a connection is made:
the host is resolved once, every address it resolves to is checked against the blocked ranges, and
the TCP connection goes to the checked address itself, never to the name again. A DNS answer that
changes between the check and the connect (rebinding) cannot move the connection, and every new
connection (a retry, a redirect hop, a pool refill) is resolved and checked again. TLS still
verifies the certificate against the host name, because the HTTP client hands the name, not the
address, to `start_tls`.
"""

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from httpcore2 import AnyIOBackend, AsyncNetworkBackend, AsyncNetworkStream, ConnectError, ConnectTimeout
from httpcore2._types import SOCKET_OPTION  # pyright: ignore[reportPrivateImportUsage] -- the interface's own alias

__all__ = [
    "BlockedAddressError",
    "GuardedBackend",
    "IPAddress",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "blocked_reason",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task credentials
    }
)
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
"""What `allow_private_network` opens (with loopback): RFC 1918, CGNAT and unique local addresses."""
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class BlockedAddressError(Exception):
    """A request would have reached an address this API may not reach."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, {reason}")
        self.host = host
        self.address = address
        self.reason = reason


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:  # noqa: PLR0911 -- one return per range
    """Why `address` may not be reached (None when it may).

    Cloud metadata, link-local, unspecified, multicast and reserved addresses are always blocked;
    loopback and private ranges only unless `allow_private`. An IPv6 address that embeds an IPv4
    address is judged by the IPv4 address too.
    """
    if address in _METADATA:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped IPv6 address"
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = blocked_reason(inner, allow_private=allow_private)
            return None if reason is None else f"an IPv6 form of {inner}, {reason}"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:
        return None if allow_private else "a loopback address"
    if any(address in net for net in _PRIVATE if net.version == address.version):
        return None if allow_private else "a private-network address"
    if address.is_reserved or not address.is_global:
        return "a reserved or non-public address"
    return None


class Resolver(Protocol):
    """Turns a host name into addresses. The guard checks every address it returns."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to (an empty list when it resolves to nothing)."""
        ...


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class SystemResolver:
    """The operating system's resolver (getaddrinfo); IP literals are taken as they are."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to for a TCP connection to `port`."""
        literal = _literal(host)
        if literal is not None:
            return [literal]
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        return found


@dataclass
class StaticResolver:
    """A resolver with fixed answers, for tests and pinned deployments.

    `answers` maps a host to its addresses; a list of lists is served one answer per lookup (the
    last one repeats), which is how a test makes a name change its answer between two lookups.
    Hosts not in the table fall back to `fallback` (none: they resolve to nothing).
    """

    answers: Mapping[str, Sequence[str] | Sequence[Sequence[str]]]
    fallback: Resolver | None = None
    lookups: list[str] = field(default_factory=list[str])

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The configured answer for `host`."""
        self.lookups.append(host)
        entry = self.answers.get(host)
        if entry is None:
            return await self.fallback.resolve(host, port) if self.fallback is not None else []
        if entry and not isinstance(entry[0], str):
            rounds: list[Sequence[str]] = [list(item) for item in entry]
            count = self.lookups.count(host)
            chosen = rounds[min(count, len(rounds)) - 1]
        else:
            chosen = [str(item) for item in entry]
        return [ipaddress.ip_address(item) for item in chosen]


class GuardedBackend(AsyncNetworkBackend):
    """An httpcore2 network backend that resolves, checks, and connects to the checked address."""

    def __init__(
        self, resolver: Resolver, *, allow_private: bool, connected: list[str] | None = None
    ) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._inner = AnyIOBackend()
        self.connected = connected
        """When a list, each connection's peer address is appended to it (tests read it)."""

    async def check(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host`, all of them allowed; raises BlockedAddressError otherwise."""
        addresses = await self._resolver.resolve(host, port)
        if not addresses:
            raise ConnectError(f"cannot resolve {host}")
        for address in addresses:
            reason = blocked_reason(address, allow_private=self._allow_private)
            if reason is not None:
                raise BlockedAddressError(host, str(address), reason)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore2's backend interface
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Connect to the first reachable checked address of `host` (never to the name)."""
        try:
            with anyio.fail_after(timeout):
                addresses = await self.check(host, port)
        except TimeoutError:
            raise ConnectTimeout(f"resolving {host} took longer than the connect timeout") from None
        last: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address
                )
            except ConnectError as exc:
                last = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if self.connected is not None:
                self.connected.append(str(peer[0]) if peer else str(address))
            return stream
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore2's backend interface
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Unix sockets are never a destination."""
        raise ConnectError("unix sockets are not a destination")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self._inner.sleep(seconds)
