"""Which browser origins may talk to this server: the page's own, and `VQ_ALLOWED_ORIGINS`.

Browsers send `Origin` on cross-site requests and WebSocket handshakes; servers and curl do not,
and keep v1's rules. The page's own origin is the one the request's `Host` names, or
`VQ_PUBLIC_URL`'s (behind a reverse proxy the `Host` header may be rewritten).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from server.config import Settings

DEFAULT_PORTS = {"http": "80", "https": "443"}


def _with_port(scheme: str, netloc: str) -> str:
    if ":" not in netloc.rsplit("]", 1)[-1]:
        return f"{netloc}:{DEFAULT_PORTS[scheme]}"
    return netloc


def _own_origin(origin: str, host: str, public_url: str | None) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        return False
    netloc = _with_port(parts.scheme, parts.netloc)
    if public_url is not None:
        own = urlsplit(public_url.lower())
        if parts.scheme == own.scheme and netloc == _with_port(own.scheme, own.netloc):
            return True
    return netloc == _with_port(parts.scheme, host)


def origin_allowed(headers: Mapping[str, str], settings: Settings, *, own_always: bool) -> bool:
    """No Origin (not a browser): allowed. Otherwise it must be listed, or be the page's own.

    `own_always`: the page's own origin is allowed even when a list is configured (changing
    HTTP requests, contract v2). WebSocket handshakes keep v1's rule: a list replaces it.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    allowed = settings.allowed_origins
    if "*" in allowed or origin in {o.lower() for o in allowed}:
        return True
    if allowed and not own_always:
        return False
    return _own_origin(origin, headers.get("host", "").lower(), settings.public_url)
