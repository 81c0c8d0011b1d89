"""Outgoing URLs given by clients (webhooks, push endpoints) must reach the public internet.

A URL whose host resolves to a private, loopback, link-local, multicast or reserved address is
refused, so that a venue's webhook or a customer's push subscription cannot make vqueue call
into its own network. `allow_private` (`VQ_WEBHOOK_ALLOW_PRIVATE=true`) lifts that for tests
and closed networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
RESOLVE_TIMEOUT_S = 3.0


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def url_problem(url: object, *, https_only: bool, allow_private: bool) -> str | None:
    """Why `url` may not be called (a sentence), or None when it may."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        return f"must be a URL of at most {MAX_URL_CHARS} characters"
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme not in schemes or not parts.hostname:
        return "must be an " + (" or ".join(schemes)) + " URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if allow_private:
        return None
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port or 443, type=socket.SOCK_STREAM
            ),
            RESOLVE_TIMEOUT_S,
        )
    except (OSError, TimeoutError, UnicodeError, ValueError):
        return "has a host that does not resolve"
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(is_public(a) for a in addresses):
        return "resolves to a private, loopback or link-local address"
    return None
