"""Which browser origins may talk to this server: the page's own, and `VQ_ALLOWED_ORIGINS`.

Browsers send `Origin` on cross-site requests and WebSocket handshakes; servers and curl do not,
and keep v1's rules. The page's own origin is `VQ_PUBLIC_URL`'s when it is set (behind a reverse
proxy the `Host` header may be rewritten), else the one the request's `Host` names.
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
    if public_url is not None:
        own = urlsplit(public_url.lower())
        return parts.scheme == own.scheme and _with_port(parts.scheme, parts.netloc) == _with_port(
            own.scheme, own.netloc
        )
    return _with_port(parts.scheme, parts.netloc) == _with_port(parts.scheme, host)


def origin_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """No Origin (not a browser): allowed. Otherwise it must be listed, or be the page's own."""
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    allowed = settings.allowed_origins
    if "*" in allowed or origin in {o.lower() for o in allowed}:
        return True
    return _own_origin(origin, headers.get("host", "").lower(), settings.public_url)
