"""A queue event as the outbox carries it: read from a Redis stream, written to PostgreSQL.

Both `server.store` and `server.db` use this one type, so the persister hands what it read
straight to the event log.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """`data` holds the type-specific fields (name, nonce, counter, waited_ms...)."""

    queue: str
    seq: int
    kind: str
    ticket: int | None
    at_ms: int
    epoch: str
    data: dict[str, str | int]


@dataclass(frozen=True, slots=True)
class StreamEvent(QueueEvent):
    """A queue event with the id of the stream entry it came from (to acknowledge it)."""

    entry_id: str
