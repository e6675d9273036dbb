"""The egress rule for the mail servers an org points Herald at: public addresses only, unless
the operator allows networks with HERALD_SMTP_ALLOWED_NETWORKS (checked at save and at connect).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from herald.errors import ValidationFailed

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# What `herald dev` allows: the local mail catcher.
LOOPBACK_V4 = "127.0.0.0/8"


class HostNotAllowed(ValidationFailed):
    """The host is (or resolves to) an address Herald does not connect to."""

    code = "smtp_host_not_allowed"

    def __init__(self, message: str, *, field: str = "host") -> None:
        super().__init__(message, field=field, code=self.code)


def parse_networks(value: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, 10.1.0.0/16"`` -> networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a network in CIDR form, like 10.0.0.0/8") from None
    return tuple(networks)


def _embedded_v4(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo): where packets really go."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def is_public(address: Address) -> bool:
    """Globally reachable unicast: not loopback, private, link-local (cloud metadata),
    shared, multicast, unspecified or reserved."""
    for candidate in {address, _embedded_v4(address)}:
        if not candidate.is_global or candidate.is_multicast or candidate.is_reserved:
            return False
    return True


def is_allowed(address: Address, allowed: Iterable[Network]) -> bool:
    if is_public(address):
        return True
    plain = _embedded_v4(address)
    return any(plain.version == net.version and plain in net for net in allowed)


def _addresses(infos: Iterable[tuple[object, ...]]) -> list[str]:
    found: list[str] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        ip = str(sockaddr[0]).partition("%")[0]
        if ip not in found:
            found.append(ip)
    return found


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (OSError when none); tests replace it."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _addresses(infos)


def _refusal(host: str, field: str) -> HostNotAllowed:
    return HostNotAllowed(
        f"Herald does not connect to {host}: a mail server must be a public address. "
        "Loopback, private, link-local, multicast and reserved addresses are refused unless "
        "the operator allows them (HERALD_SMTP_ALLOWED_NETWORKS).",
        field=field,
    )


def check_addresses(
    host: str, addresses: Iterable[str], allowed: Iterable[Network], *, field: str = "host"
) -> None:
    allowed = tuple(allowed)
    for text in addresses:
        if not is_allowed(ipaddress.ip_address(text), allowed):
            raise _refusal(host, field)


def check_host(host: str, allowed: Iterable[Network], *, field: str = "host") -> None:
    """At save: refuse a host that is, or resolves to, a refused address.

    A name that does not resolve now is left to the connect-time check (DNS may be down).
    """
    try:
        addresses = _addresses(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return
    check_addresses(host, addresses, allowed, field=field)


async def checked_address(host: str, port: int, allowed: Iterable[Network]) -> str:
    """At connect: resolve, check every address, answer the one to connect to.

    HostNotAllowed when any is refused; OSError when the name does not resolve.
    """
    addresses = await resolve(host, port)
    if not addresses:
        raise OSError(f"{host} did not resolve")
    check_addresses(host, addresses, allowed)
    return addresses[0]
