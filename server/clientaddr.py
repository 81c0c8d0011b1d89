"""Who is asking: the client address behind trusted proxies, and the bucket it is counted in.

The address is the socket's peer, unless the peer is a trusted proxy: then it is the first
`X-Forwarded-For` hop, walking from the right, that is not itself a trusted proxy (the hops to
its left were written by the client and prove nothing). IPv6 clients are counted per /64, since
one subscriber usually holds a whole /64.
"""

from __future__ import annotations

import functools
import ipaddress

from starlette.types import Scope

from server.config import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = ipaddress.IPv4Address("0.0.0.0")  # a placeholder, never bound
# Parsing an address and naming its bucket take ipaddress ~5 us together, on every join and
# every WebSocket; the same addresses come back again and again (a reconnect storm, a venue
# behind one NAT), so the answers are kept (~0.2 us). Both are pure functions.
CACHED = 4096
LONGEST = 100  # characters: "[v6%zone]:port" fits; longer text is not an address, nor kept


def _parse(text: str) -> Address | None:
    text = text.strip()
    return None if len(text) > LONGEST else _parse_short(text)


@functools.lru_cache(maxsize=CACHED)
def _parse_short(text: str) -> Address | None:
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: tuple[Network, ...]) -> bool:
    return any(address in network for network in proxies)


def forwarded_hops(scope: Scope) -> list[str]:
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    return hops


def client_address(scope: Scope, proxies: tuple[Network, ...]) -> Address:
    """The client's address as this deployment should believe it."""
    peer = scope.get("client")
    address = _parse(str(peer[0])) if peer else None
    if address is None:
        return UNKNOWN
    if not proxies or not _trusted(address, proxies):
        return address
    for hop in reversed(forwarded_hops(scope)):
        parsed = _parse(hop)
        if parsed is None:  # garbage from the client side: stop at the last proxy we trust
            return address
        address = parsed
        if not _trusted(address, proxies):
            return address
    return address


@functools.lru_cache(maxsize=CACHED)
def bucket(address: Address) -> str:
    """The name an address is counted under: itself, or its /64 for IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address) + "/64"
    return str(address)


def exempt(address: Address, networks: tuple[Network, ...]) -> bool:
    return _trusted(address, networks)
