"""Queue-level operations shared by the HTTP handlers: summaries, and bringing a queue back to
Redis when PostgreSQL knows it but Redis has lost it (a flush, or a new empty Redis)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from protocol.names import is_slug
from server.db import Database
from server.errors import ApiError
from server.queuesettings import settings_view
from server.services import Services

log = logging.getLogger(__name__)

T = TypeVar("T")


class KnownQueues:
    """The slugs PostgreSQL knows, so a flood of unknown slugs costs neither memory nor queries.

    A slug missing from Redis is looked up here before any rebuild. The set is read whole from
    PostgreSQL at most once per `refresh_s` (a queue made on another node since the last read is
    found by the next one), and it only ever holds real queues' slugs.
    """

    def __init__(self, db: Database, refresh_s: float = 5.0) -> None:
        self._db = db
        self._refresh_s = refresh_s
        self._slugs: set[str] = set()
        self._read_at: float | None = None

    def add(self, slug: str) -> None:
        self._slugs.add(slug)

    async def contains(self, slug: str) -> bool:
        if slug in self._slugs:
            return True
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self._refresh_s:
            self._read_at = now
            self._slugs = await self._db.queue_slugs()
        return slug in self._slugs


async def restore(svc: Services, queue: str) -> bool:
    """Recreate a queue's live state from PostgreSQL; False when PostgreSQL has no such queue.

    With recovery configured (`svc.rebuild`) the tickets are replayed from the event log;
    either way the queue comes back under a new epoch, so every node resyncs its watchers.
    """
    if svc.rebuild is not None:
        if not await svc.rebuild(queue):
            return False
    else:
        row = await svc.db.queue(queue)
        if row is None:
            return False
        await svc.store.upsert_queue(queue, row.venue_id, row.name)
    log.warning("queue %s was missing from Redis; restored from PostgreSQL", queue)
    return True


async def with_live_queue(svc: Services, queue: str, op: Callable[[], Awaitable[T]]) -> T:
    """Run `op`; if Redis no longer has the queue but PostgreSQL does, restore it and retry."""
    if not is_slug(queue):
        raise ApiError.from_code("queue_not_found")
    try:
        return await op()
    except ApiError as exc:
        if exc.code != "queue_not_found":
            raise
        if svc.known_queues is not None and not await svc.known_queues.contains(queue):
            raise
        if not await restore(svc, queue):
            raise
    return await op()


async def summary(svc: Services, queue: str) -> dict[str, Any]:
    async def read() -> dict[str, str]:
        meta = await svc.store.queue_meta(queue)
        if meta is None:
            raise ApiError.from_code("queue_not_found")
        return meta

    meta = await with_live_queue(svc, queue, read)
    return {
        "queue": queue,
        "name": meta.get("name", queue),
        "state": meta.get("state", "open"),
        "waiting": int(meta["waiting"]),
        "archived": "archived" in meta,
        **settings_view(meta),
    }
