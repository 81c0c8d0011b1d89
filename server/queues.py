"""Queue-level operations shared by the HTTP handlers: summaries, and bringing a queue back to
Redis when PostgreSQL knows it but Redis has lost it (a flush, or a new empty Redis)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from protocol.names import is_slug
from server.errors import ApiError
from server.queuesettings import settings_view
from server.services import Services

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        if exc.code != "queue_not_found" or not await restore(svc, queue):
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
        **settings_view(meta),
    }
