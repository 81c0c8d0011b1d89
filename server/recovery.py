"""Rebuilding live queues in Redis from the event log (architecture.md inv. 7).

A queue is rebuilt when Redis lost it (its meta is gone: a flush, a new empty Redis) or went
back in time (its seq is below the last one PostgreSQL has: a crash lost Redis's last second of
writes after the persister had copied them). The rebuild replays the queue's events from
`queue_events` in seq order, merged with whatever the Redis stream still holds that PostgreSQL
does not have yet, and writes the result in one script under a new epoch, so every node resyncs
its watchers. Ticket nonces travel in the `joined` events, so customers' tokens keep working.

The replay (`server/replay.py`) is pure: events in, the queue's live state out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator

from protocol.ticket import FINISHED_KEEP_MS
from server import transfers
from server.config import Settings
from server.db import Database
from server.db.events import EventLog, QueueHead
from server.events import StreamEvent
from server.replay import Event, LiveQueue, restore_payload
from server.store import Store
from server.store.events import EventStreams

log = logging.getLogger(__name__)

__all__ = ["FINISHED_KEEP_MS", "Event", "LiveQueue", "Recovery", "needs_rebuild", "recover_all"]


def needs_rebuild(epoch: str | None, seq: int | None, logged_seq: int | None) -> bool:
    """Redis lost the queue, or holds less of it than PostgreSQL does."""
    if epoch is None:
        return True
    return logged_seq is not None and (seq is None or seq < logged_seq)


def _from_stream(e: StreamEvent) -> Event:
    return Event(e.seq, e.kind, e.ticket, e.at_ms, e.data)


class Recovery:
    """Rebuilds queues; used by the request path, the persister's periodic check and the CLI."""

    def __init__(self, store: Store, db: Database) -> None:
        self.store = store
        self.streams = EventStreams(store)
        self.log = EventLog(db)
        self.rebuilds = 0
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}  # holders and waiters of each lock

    async def rebuild(self, queue: str) -> bool:
        """Bring `queue` back in Redis if it needs it; False when PostgreSQL does not know it."""
        async with self._lock(queue):
            head = await self.log.head(queue)
            if head is None:
                return False
            await self._rebuild(head)
            return True

    @contextlib.asynccontextmanager
    async def _lock(self, queue: str) -> AsyncIterator[None]:
        # One rebuild per queue at a time on this node; other nodes are kept out by the script.
        # The lock goes when nobody holds or waits for it: no state is kept per name.
        lock = self._locks.setdefault(queue, asyncio.Lock())
        self._users[queue] = self._users.get(queue, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[queue] -= 1
            if self._users[queue] == 0:
                del self._users[queue], self._locks[queue]

    async def _rebuild(self, head: QueueHead) -> bool:
        # Read Redis first, then the stream, then PostgreSQL: an entry trimmed after it was
        # persisted is in PostgreSQL by then, and any change after the first read makes the
        # script's compare-and-set fail instead of being overwritten.
        ((epoch, seq),) = await self.store.seqs([head.slug])
        if not needs_rebuild(epoch, seq, head.seq):
            return False
        pending = sorted(await self.streams.entries(head.slug), key=lambda e: e.seq)
        live = LiveQueue(now_ms=int(time.time() * 1000))
        async for event in self._merged(head.slug, [_from_stream(e) for e in pending]):
            live.apply(event)
        payload = restore_payload(live, head, secrets.token_hex(6), (epoch, seq))
        result = await self.streams.restore(head.slug, payload)
        if not result["restored"]:
            log.info("queue %s changed while it was being rebuilt; left as it is", head.slug)
            return False
        self.rebuilds += 1
        log.warning(
            "queue %s rebuilt from the event log: seq %d, %d waiting, %d called, epoch %s "
            "(was %s); %d events missing from the log, %d tickets without their nonce",
            head.slug,
            live.seq,
            len(live.line),
            len(live.called),
            payload["epoch"],
            epoch,
            live.missing_seqs,
            live.new_nonces,
        )
        return True

    async def _merged(self, queue: str, pending: list[Event]) -> AsyncIterator[Event]:
        """PostgreSQL's events of the queue merged with the stream's, in seq order."""
        i = 0
        async for row in self.log.replay(queue):
            while i < len(pending) and pending[i].seq < row.seq:
                yield pending[i]
                i += 1
            yield Event(row.seq, row.kind, row.ticket, row.at_ms, row.data)
        for event in pending[i:]:
            yield event

    async def check(self) -> list[str]:
        """Rebuild every queue PostgreSQL knows that Redis lost or holds less of; their slugs."""
        heads = await self.log.heads()
        if not heads:
            return []
        current = await self.store.seqs([h.slug for h in heads])
        stale = [h for h, (e, s) in zip(heads, current, strict=True) if needs_rebuild(e, s, h.seq)]
        # A live queue missing from the index would never be persisted: put it back.
        await self.streams.index([h.slug for h, (e, _) in zip(heads, current, strict=True) if e])
        done: list[str] = []
        for head in stale:
            try:
                async with self._lock(head.slug):
                    if await self._rebuild(head):
                        done.append(head.slug)
            except ValueError:
                log.exception("could not rebuild queue %s", head.slug)
        await transfers.complete_pending(self.store)  # transfers a crash left half-done
        return done


async def recover_all(settings: Settings) -> int:
    """`vqueue recover`: rebuild every queue Redis lost; the number of queues rebuilt."""
    assert settings.redis_url is not None and settings.database_url is not None
    store = Store(
        settings.redis_url.reveal(), settings.redis_prefix, cluster=settings.redis_cluster
    )
    db = await Database.connect(settings.database_url.reveal(), max_size=2)
    try:
        recovery = Recovery(store, db)
        done = await recovery.check()
        for queue in done:
            log.info("recovered queue %s", queue)
        return recovery.rebuilds
    finally:
        await store.close()
        await db.close()
