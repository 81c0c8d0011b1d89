"""The abuse limits that need a client address: joins per address and queue, WebSockets per address.

Join limits are counted in Redis inside the join script (so every node shares one count); the
WebSocket cap is per node, counted here. `rate_limited_total` is the number of requests and
handshakes refused by a limit since the process started (`Refused.rate_limited_total`, for the
`vqueue_rate_limited_total` metric).
"""

from __future__ import annotations

from collections import Counter

from starlette.types import Scope

from server.clientaddr import Address, bucket, client_address, exempt
from server.config import Settings
from server.store import JoinLimits


class Refused:
    """Process-wide counts of refusals, for metrics."""

    rate_limited_total = 0


def count_rate_limited() -> None:
    Refused.rate_limited_total += 1


def join_limits(settings: Settings, scope: Scope) -> JoinLimits | None:
    """The limits a join without a staff key counts against; None when every limit is off."""
    per_queue = settings.join_rate_queue
    per_client = settings.join_rate_ip
    if per_client is None and per_queue is None:
        return None
    address = client_address(scope, settings.trusted_proxies)
    if per_client is not None and exempt(address, settings.rate_exempt):
        per_client = None
        if per_queue is None:
            return None
    return JoinLimits(
        client=bucket(address),
        per_client=None if per_client is None else (per_client.count, per_client.window_s),
        per_queue=None if per_queue is None else (per_queue.count, per_queue.window_s),
    )


class SocketCounts:
    """Open WebSockets per client address bucket on this node, capped at `settings.ws_per_ip`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._open: Counter[str] = Counter()

    def acquire(self, scope: Scope) -> str | None:
        """The bucket now holding one more socket, "" when uncapped, None when over the cap."""
        cap = self._settings.ws_per_ip
        if cap is None:
            return ""
        address: Address = client_address(scope, self._settings.trusted_proxies)
        if exempt(address, self._settings.rate_exempt):
            return ""
        name = bucket(address)
        if self._open[name] >= cap:
            count_rate_limited()
            return None
        self._open[name] += 1
        return name

    def release(self, name: str) -> None:
        if not name:
            return
        self._open[name] -= 1
        if self._open[name] <= 0:
            del self._open[name]  # no entry kept for an address with no socket
