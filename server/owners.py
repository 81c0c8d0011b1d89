"""Which venue owns each queue, as this node has read it."""

from __future__ import annotations


class QueueOwners:
    """The venue of each queue this node has checked. A queue never changes hands (its slug
    stays taken, archived or not: docs/protocol.md), so after the first staff call on a queue
    the next ones skip a Redis round trip before their script. Only owners found are kept: a
    slug nobody owns yet is asked again, since a venue may take it meanwhile."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._owners: dict[str, str] = {}

    def get(self, queue: str) -> str | None:
        return self._owners.get(queue)

    def put(self, queue: str, venue_id: str) -> None:
        if len(self._owners) >= self._max:  # a bound, not an eviction policy: refilled on use
            self._owners.clear()
        self._owners[queue] = venue_id
