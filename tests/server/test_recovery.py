"""Recovery: live queues rebuilt from the event log when Redis loses them (architecture.md inv. 7).

The replay is checked with plain tables; the rebuild against real Redis and PostgreSQL; the
whole path (Redis flushed and restarted under running servers with watchers, and `vqueue
recover` from the command line) with real server processes and WebSocket clients.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from server.config import Settings
from server.db import Database
from server.embedded import EmbeddedRedis
from server.keys import queues_index
from server.persister import Persister
from server.recovery import FINISHED_KEEP_MS, Event, LiveQueue, Recovery, needs_rebuild
from server.store import Store
from tests.conftest import ROOT, server_env
from tests.server.test_persister import FAST, all_persisted, logged, wait_for
from tests.server.watchers import RecordingWatcher, settle

NOW = 10_000_000_000


def ev(seq: int, kind: str, ticket: int | None = None, at: int = NOW, **data: Any) -> Event:
    return Event(seq, kind, ticket, at, data)


# -- the replay, in tables ----------------------------------------------------------------------


def test_replay_rebuilds_line_calls_counters_and_state() -> None:
    live = LiveQueue(now_ms=NOW)
    for e in [
        ev(1, "joined", 1, NOW - 50, nonce="n1", name="Ann"),
        ev(2, "joined", 2, NOW - 40, nonce="n2"),
        ev(3, "joined", 3, NOW - 30, nonce="n3"),
        ev(4, "called", 1, NOW - 20, counter="desk 2", waited_ms=30),
        ev(5, "paused"),
        ev(6, "joined", 4, NOW - 10, nonce="n4"),
        ev(7, "left", 3, NOW - 5),
        ev(8, "resumed"),
        ev(9, "called", 2, NOW - 4, waited_ms=36),
        ev(10, "served", 1, NOW - 3, service_ms=17),
        ev(11, "closed"),
    ]:
        live.apply(e)
    assert sorted(live.line) == [4]
    assert live.called == {2: NOW - 4}
    assert live.finished == {1: NOW - 3, 3: NOW - 5}
    assert live.counters == {"desk 2": 1}
    assert (live.state, live.seq, live.next_number) == ("closed", 11, 4)
    assert live.tickets[1].to_map() == {
        "s": "served",
        "nc": "n1",
        "j": NOW - 50,
        "nm": "Ann",
        "c": NOW - 20,
        "ct": "desk 2",
        "f": NOW - 3,
    }
    assert live.tickets[2].to_map() == {"s": "called", "nc": "n2", "j": NOW - 40, "c": NOW - 4}
    assert live.tickets[3].status == "left"
    assert (live.missing_seqs, live.new_nonces) == (0, 0)


@pytest.mark.parametrize(
    ("events", "line", "seq", "missing", "new_nonces"),
    [
        # the same event twice (from PostgreSQL and from the stream) counts once
        ([ev(1, "joined", 1, nonce="a"), ev(1, "joined", 1, nonce="a")], [1], 1, 0, 0),
        # a lost event shows as a gap; the rest still applies
        ([ev(1, "joined", 1, nonce="a"), ev(3, "joined", 3, nonce="c")], [1, 3], 3, 1, 0),
        # a join logged before nonces were: the ticket comes back with a new one
        ([ev(1, "joined", 1)], [1], 1, 0, 1),
        # a call whose join was lost still makes a called ticket
        ([ev(2, "called", 7, waited_ms=5)], [], 2, 1, 1),
        # a finish of an unknown ticket changes nothing
        ([ev(1, "served", 9)], [], 1, 0, 0),
        ([ev(1, "no_show", 9), ev(2, "opened")], [], 2, 0, 0),
    ],
)
def test_replay_tolerates_what_a_log_can_miss(
    events: list[Event], line: list[int], seq: int, missing: int, new_nonces: int
) -> None:
    live = LiveQueue(now_ms=NOW)
    for e in events:
        live.apply(e)
    assert (sorted(live.line), live.seq, live.missing_seqs, live.new_nonces) == (
        line,
        seq,
        missing,
        new_nonces,
    )


def test_replay_drops_tickets_finished_more_than_a_day_ago() -> None:
    live = LiveQueue(now_ms=NOW)
    old = NOW - FINISHED_KEEP_MS - 1
    for e in [
        ev(1, "joined", 1, old - 10, nonce="a"),
        ev(2, "called", 1, old - 5),
        ev(3, "served", 1, old),
        ev(4, "joined", 2, NOW - 10, nonce="b"),
        ev(5, "left", 2, NOW - 5),
    ]:
        live.apply(e)
    assert sorted(live.tickets) == [2] and live.finished == {2: NOW - 5}
    assert live.next_number == 2


@pytest.mark.parametrize(
    ("epoch", "seq", "logged_seq", "expected"),
    [
        (None, None, None, True),  # Redis lost the queue
        (None, None, 12, True),
        ("e", 12, 12, False),  # in step
        ("e", 15, 12, False),  # Redis ahead: the persister is catching up
        ("e", 9, 12, True),  # Redis went back in time
        ("e", 0, None, False),
    ],
)
def test_needs_rebuild(
    epoch: str | None, seq: int | None, logged_seq: int | None, expected: bool
) -> None:
    assert needs_rebuild(epoch, seq, logged_seq) is expected


# -- rebuilds against real Redis and PostgreSQL ---------------------------------------------------


async def _forget(store: Store) -> None:
    """Delete every key of this test's prefix: Redis as it comes back empty (the Redis server is
    shared by the session, so no FLUSHALL here; the end-to-end tests below flush their own)."""
    keys = [k async for k in store.redis.scan_iter(match=f"{store.prefix}:*")]
    if keys:
        await store.redis.delete(*keys)


async def _line(store: Store, queue: str) -> list[tuple[int, str | None]]:
    return await store.waiting_list(queue)


async def _queue(store: Store, db: Database, venue: str) -> str:
    queue = f"r-{secrets.token_hex(3)}"
    await db.upsert_queue(queue, venue, "Rebuilt")
    await store.upsert_queue(queue, venue, "Rebuilt")
    return queue


async def _persist_all(settings: Settings, store: Store, db: Database, queue: str) -> None:
    assert settings.database_url is not None
    persister = Persister(store, db, **FAST)
    await persister.start()
    try:
        await wait_for(
            lambda: all_persisted(settings.database_url.reveal(), store, [queue]),  # type: ignore[union-attr]
            15,
            "every event persisted",
        )
    finally:
        await persister.stop()


async def test_rebuild_after_redis_lost_everything(
    settings: Settings, store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue("Flush")
    queue = await _queue(store, db, venue)
    joined = [await store.join(queue, f"n{i}", None) for i in range(12)]
    await store.call_next(queue, "desk 1", None)
    await store.call_next(queue, None, None)
    await store.finish(queue, 1, "served")
    await store.leave(queue, 5, str(joined[4]["nonce"]))
    await store.set_state(queue, "pause")
    before_line = await _line(store, queue)
    before_meta = await store.queue_meta(queue)
    before_tickets = {n: await store.ticket(queue, n) for n in range(1, 13)}
    before_counters = await store.counters(queue)
    await _persist_all(settings, store, db, queue)

    await _forget(store)
    assert await store.queue_meta(queue) is None
    recovery = Recovery(store, db)
    assert await recovery.check() == [queue]

    after_meta = await store.queue_meta(queue)
    assert before_meta is not None and after_meta is not None
    assert await _line(store, queue) == before_line  # every waiting ticket, in its order
    for field in ("venue", "name", "state", "seq", "next", "waiting"):
        assert after_meta[field] == before_meta[field], field
    assert after_meta["epoch"] != before_meta["epoch"]  # a new epoch: every node resyncs
    assert await store.counters(queue) == before_counters
    for number, view in before_tickets.items():
        again = await store.ticket(queue, number)
        assert view is not None and again is not None
        # Same status, nonce (customers' tokens still work), times, counter and position.
        assert (again.status, again.nonce, again.joined_ms, again.called_ms, again.counter) == (
            view.status,
            view.nonce,
            view.joined_ms,
            view.called_ms,
            view.counter,
        )
        assert again.position == view.position and again.name == view.name
    assert await store.redis.sismember(queues_index(store.prefix), queue)

    # Life goes on: the next ticket gets the next number, the log goes on without a conflict.
    await store.set_state(queue, "resume")
    assert (await store.join(queue, None, None))["number"] == 13
    await _persist_all(settings, store, db, queue)
    assert settings.database_url is not None
    rows = await logged(settings.database_url.reveal(), queue)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert len({r["epoch"] for r in rows}) == 2
    assert await recovery.check() == []  # nothing more to do


async def test_rebuild_uses_stream_events_not_yet_persisted(
    settings: Settings, store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue("Stream")
    queue = await _queue(store, db, venue)
    for i in range(4):
        await store.join(queue, f"a{i}", None)
    await _persist_all(settings, store, db, queue)
    for i in range(3):  # these are only in the stream: no persister runs now
        await store.join(queue, f"b{i}", None)
    await store.call_next(queue, None, None)
    before = await _line(store, queue)
    k = store.keys(queue)
    await store.redis.delete(k.meta, k.line, k.tickets, k.called)  # the queue, not its stream
    assert await Recovery(store, db).rebuild(queue)
    assert await _line(store, queue) == before
    meta = await store.queue_meta(queue)
    assert meta is not None and (meta["seq"], meta["next"]) == ("8", "7")


async def test_redis_gone_back_in_time_is_rebuilt(
    settings: Settings, store: Store, db: Database, make_venue: Any
) -> None:
    """Redis restarted from an AOF missing its last second, after the persister had copied it."""
    venue, _ = await make_venue("Regress")
    queue = await _queue(store, db, venue)
    for i in range(10):
        await store.join(queue, f"t{i}", None)
    await _persist_all(settings, store, db, queue)
    k = store.keys(queue)
    await store.redis.zrem(k.line, 8, 9, 10)  # what the lost second had written
    await store.redis.hdel(k.tickets, "8", "9", "10")
    await store.redis.hset(k.meta, mapping={"seq": 7, "next": 7})
    assert await Recovery(store, db).check() == [queue]
    assert [n for n, _ in await _line(store, queue)] == list(range(1, 11))
    assert (await store.join(queue, None, None))["number"] == 11


async def test_concurrent_rebuilds_write_once(
    settings: Settings, store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue("Race")
    queue = await _queue(store, db, venue)
    for _ in range(30):
        await store.join(queue, None, None)
    await _persist_all(settings, store, db, queue)
    await _forget(store)
    assert settings.redis_url is not None
    others = [Store(settings.redis_url.reveal(), store.prefix) for _ in range(3)]
    recoveries = [Recovery(s, db) for s in others]
    results = await asyncio.gather(*(r.check() for r in recoveries))
    assert sum(len(r) for r in results) == 1  # one node's script won; the others saw it done
    assert [n for n, _ in await _line(store, queue)] == list(range(1, 31))
    for s in others:
        await s.close()


async def test_an_unknown_queue_is_not_rebuilt(store: Store, db: Database) -> None:
    assert not await Recovery(store, db).rebuild("no-such-queue")


# -- end to end: servers, watchers, a Redis that comes back empty ---------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


async def _populate(
    http: httpx.AsyncClient, queue: str, auth: dict[str, str]
) -> list[dict[str, Any]]:
    assert (
        await http.put(f"/v1/queues/{queue}", json={"name": "E2E"}, headers=auth)
    ).status_code == 201
    tickets = []
    for i in range(16):
        r = await http.post(f"/v1/queues/{queue}/tickets", json={"name": f"w{i}"})
        assert r.status_code == 201
        tickets.append(r.json())
    for _ in range(3):
        assert (
            await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
        ).status_code == 200
    for t in (tickets[6], tickets[10]):
        r = await http.delete(
            f"/v1/tickets/{t['ticket_id']}", headers={"Authorization": f"Bearer {t['token']}"}
        )
        assert r.status_code == 200
    return tickets


async def _staff_line(http: httpx.AsyncClient, queue: str, auth: dict[str, str]) -> list[str]:
    # After a Redis restart a pooled connection that died with it answers 503 once (the
    # contract's answer, with Retry-After): a client asks again.
    for _ in range(20):
        r = await http.get(f"/v1/queues/{queue}/tickets", headers=auth)
        if r.status_code != 503:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 200, r.text
    return [row["ticket_id"] for row in r.json()["waiting"]]


async def _wait_persisted(settings: Settings, redis_url: str, queue: str) -> None:
    assert settings.database_url is not None
    dsn = settings.database_url.reveal()
    store = Store(redis_url, settings.redis_prefix)
    try:
        await wait_for(lambda: all_persisted(dsn, store, [queue]), 15, "every event logged")
    finally:
        await store.close()


async def test_redis_flushed_and_restarted_is_rebuilt_automatically(
    own_redis: EmbeddedRedis, start_server: Any, make_venue: Any, settings: Settings
) -> None:
    """Must-show 4, the automatic path: servers keep running, watchers end at their places."""
    _, key = await make_venue("Auto")
    auth = {"Authorization": f"Bearer {key}"}
    nodes = [start_server(REDIS_URL=own_redis.url) for _ in range(2)]
    queue = f"a-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=nodes[0].url, timeout=10) as http:
        tickets = await _populate(http, queue, auth)
        before = await _staff_line(http, queue, auth)
        waiting = [t for t in tickets if t["ticket_id"] in before]
        watchers = [
            RecordingWatcher(t["ticket_id"], t["token"], nodes[i % 2].ws_url)
            for i, t in enumerate(waiting)
        ]
        for w in watchers:
            await w.start()
        assert await settle(watchers, http, queue, key) == []
        await _wait_persisted(settings, own_redis.url, queue)

        raw = aioredis.Redis.from_url(own_redis.url)
        await raw.flushall()
        await raw.aclose()
        own_redis.stop()
        own_redis.start()  # back, empty (the AOF had the FLUSHALL)
        raw = aioredis.Redis.from_url(own_redis.url)

        # No request touches the queue before this: the servers' periodic check must rebuild it.
        await wait_for(lambda: _rebuilt_any(raw, queue), 20, "the automatic rebuild")
        assert await _staff_line(http, queue, auth) == before
        assert await settle(watchers, http, queue, key, timeout_s=15) == []
        for t in waiting:  # old tokens still prove their tickets
            r = await http.get(
                f"/v1/tickets/{t['ticket_id']}", headers={"Authorization": f"Bearer {t['token']}"}
            )
            assert r.status_code == 200 and r.json()["position"] == before.index(t["ticket_id"]) + 1
        r = await http.post(f"/v1/queues/{queue}/tickets", json={})
        assert r.status_code == 201 and r.json()["number"] == 17
        for w in watchers:
            await w.stop()
        await raw.aclose()


async def _rebuilt_any(raw: aioredis.Redis, queue: str) -> bool:
    return bool([k async for k in raw.scan_iter(match=f"*{{{queue}}}:meta")])


async def test_vqueue_recover_rebuilds_for_new_watchers(
    own_redis: EmbeddedRedis, start_server: Any, make_venue: Any, settings: Settings
) -> None:
    """Must-show 4, by hand: every server down, Redis flushed, `vqueue recover`, servers back."""
    _, key = await make_venue("Cli")
    auth = {"Authorization": f"Bearer {key}"}
    node = start_server(REDIS_URL=own_redis.url)
    queue = f"c-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        tickets = await _populate(http, queue, auth)
        before = await _staff_line(http, queue, auth)
        await _wait_persisted(settings, own_redis.url, queue)
    node.stop()
    raw = aioredis.Redis.from_url(own_redis.url)
    await raw.flushall()
    await raw.aclose()

    env = server_env(settings, REDIS_URL=own_redis.url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "recover", env=env, cwd=ROOT, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"recovered 1 queue(s)" in out

    node.start()
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        assert await _staff_line(http, queue, auth) == before
        waiting = [t for t in tickets if t["ticket_id"] in before]
        watchers = [RecordingWatcher(t["ticket_id"], t["token"], node.ws_url) for t in waiting]
        for w in watchers:
            await w.start()
        assert await settle(watchers, http, queue, key) == []
        assert [w.last_position for w in watchers] == list(range(1, len(before) + 1))
        for w in watchers:
            await w.stop()
