"""The notifier's reading of the streams, in process on real Redis and PostgreSQL: events a dead
node read but never handled are taken over (XAUTOCLAIM), a stream keeps every entry the
notifier has not acknowledged even once the persister has committed it, and a finished ticket's
contacts outlive the finish while another node holds an earlier event of its queue."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from server.db import Database
from server.db.contacts import Contact, ContactTable
from server.db.deliveries import WebhookTable
from server.errors import Unavailable
from server.keys import NOTIFIER_GROUP, PERSISTER_GROUP
from server.notify.notifier import Notifier
from server.notify.plan import new_secret
from server.store import Store
from server.store.events import EventStreams


async def queue_of(store: Store, db: Database, venue: str) -> str:
    queue = f"n-{secrets.token_hex(3)}"
    await db.upsert_queue(queue, venue, queue)
    await store.upsert_queue(queue, venue, queue)
    return queue


async def rows(db: Database, queue: str) -> list[Any]:
    async with db.connection() as conn:
        found: list[Any] = await conn.fetch(
            "SELECT seq, type FROM deliveries WHERE queue = $1 ORDER BY seq", queue
        )
    return found


async def test_events_a_dead_node_held_are_taken_over(
    store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue()
    await WebhookTable(db).create(venue, "http://127.0.0.1:9/x", ["ticket.joined"], new_secret())
    queue = await queue_of(store, db, venue)
    streams = EventStreams(store, NOTIFIER_GROUP, companions=(PERSISTER_GROUP,))
    await streams.ensure_groups([queue])
    for _ in range(5):
        await store.join(queue, None, None)
    held = await streams.read("dead-node", [queue], 100, 0)  # read, never handled: it "died"
    assert len(held) == 5
    alive = Notifier(store, db, {}, retry_s=(60.0,), claim_idle_ms=300, block_ms=50)
    await alive.start()
    try:
        for _ in range(100):
            if len(await rows(db, queue)) >= 5:
                break
            await asyncio.sleep(0.1)
    finally:
        await alive.stop()
    found = await rows(db, queue)
    assert [r["type"] for r in found] == ["ticket.joined"] * 5
    assert [r["seq"] for r in found] == sorted(e.seq for e in held)
    pending = await store.redis.xpending(store.keys(queue).events, NOTIFIER_GROUP)
    assert pending["pending"] == 0


async def test_the_stream_keeps_what_the_notifier_has_not_acknowledged(
    store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue()
    queue = await queue_of(store, db, venue)
    persister_side = EventStreams(store, PERSISTER_GROUP, companions=(NOTIFIER_GROUP,))
    notifier_side = EventStreams(store, NOTIFIER_GROUP, companions=(PERSISTER_GROUP,))
    await persister_side.ensure_groups([queue])
    for _ in range(4):
        await store.join(queue, None, None)
    key = store.keys(queue).events
    committed = await persister_side.read("p", [queue], 100, 0)
    await persister_side.ack((e.queue, e.entry_id) for e in committed)  # acks, then trims
    assert await store.redis.xlen(key) == 4  # the notifier has seen none of them
    first = await notifier_side.read("n", [queue], 2, 0)
    await notifier_side.ack((e.queue, e.entry_id) for e in first)
    assert await store.redis.xlen(key) == 2
    rest = await notifier_side.read("n", [queue], 100, 0)
    await notifier_side.ack((e.queue, e.entry_id) for e in rest)
    assert await store.redis.xlen(key) == 0


async def test_a_finished_tickets_contacts_wait_while_another_node_holds_an_earlier_event(
    store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue()
    queue = await queue_of(store, db, venue)
    contacts = ContactTable(db)
    streams = EventStreams(store, NOTIFIER_GROUP, companions=(PERSISTER_GROUP,))
    await streams.ensure_groups([queue])
    done_one = (await store.join(queue, None, None))["number"]
    waiting = (await store.join(queue, None, None))["number"]
    for number in (done_one, waiting):
        await contacts.put(queue, number, Contact(email=f"t{number}@example.org"))
    assert len(await streams.read("dead-node", [queue], 1, 0)) == 1  # the first join, held
    assert (await store.call_next(queue, "1", None))["number"] == done_one
    await store.finish(queue, done_one, "served")
    # Claimed only after a minute: while the test runs, the dead node's join stays held.
    alive = Notifier(store, db, {}, retry_s=(60.0,), claim_idle_ms=60_000, block_ms=50)
    await alive.start()
    try:
        for _ in range(100):
            async with db.connection() as conn:
                finished = await conn.fetchval(
                    "SELECT finished_at IS NOT NULL FROM ticket_contacts"
                    " WHERE queue = $1 AND number = $2",
                    queue,
                    done_one,
                )
            if finished:
                break
            await asyncio.sleep(0.1)
    finally:
        await alive.stop()
    # Handled, but kept for the held join's sake (deleted by housekeeping after the grace).
    assert finished
    assert await contacts.get(queue, done_one) is not None
    assert await contacts.get(queue, waiting) is not None


@pytest.mark.parametrize(
    "error",
    [TimeoutError("timed out sending"), ConnectionResetError("reset"), RuntimeError("closed")],
    ids=["timeout", "reset", "closed-transport"],
)
async def test_every_store_failure_reaches_the_readers_as_unavailable(
    store: Store, error: Exception
) -> None:
    # The persister and the notifier wait and retry on Unavailable; anything else is logged as
    # a bug with its traceback. A send timing out during a cluster failover arrives as a plain
    # TimeoutError (an OSError), not a RedisError: it must count as "Redis down" too.
    streams = EventStreams(store)

    async def failing() -> None:
        raise error

    with pytest.raises(Unavailable):
        await streams._call(failing())
