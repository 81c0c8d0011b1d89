"""The persister: every event in `queue_events` exactly once, whatever fails (inv. 6 of
docs/architecture.md).

In-process persisters play several nodes (each with its own Redis and PostgreSQL connections)
against real Redis and PostgreSQL; the outage and multi-node tests run real server processes.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from server.auth import new_staff_key
from server.config import Settings
from server.db import Database
from server.embedded import EmbeddedPostgres
from server.errors import ApiError
from server.keys import PERSISTER_GROUP
from server.persister import Persister
from server.recovery import Event, LiveQueue
from server.store import Store

FAST: dict[str, Any] = {"claim_idle_ms": 400, "block_ms": 100, "refresh_s": 0.1}


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Poll `check` until true; the seconds it took. Fails with `what` at the deadline."""
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < timeout_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def logged(dsn: str, queue: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT seq, type, ticket, at, epoch, data FROM queue_events"
            " WHERE queue = $1 ORDER BY seq",
            queue,
        )
    finally:
        await conn.close()


async def live_seq(store: Store, queue: str) -> int:
    ((_, seq),) = await store.seqs([queue])
    return seq or 0


async def all_persisted(dsn: str, store: Store, queues: list[str]) -> bool:
    for queue in queues:
        if len(await logged(dsn, queue)) != await live_seq(store, queue):
            return False
    return True


def assert_exact_log(rows: list[asyncpg.Record], seq: int) -> None:
    """One row per seq from 1 to `seq`: no gap, no duplicate, in order."""
    assert [r["seq"] for r in rows] == list(range(1, seq + 1))
    times = [r["at"] for r in rows]
    assert times == sorted(times)


def replay(rows: list[asyncpg.Record]) -> LiveQueue:
    import orjson

    live = LiveQueue(now_ms=int(time.time() * 1000))
    for r in rows:
        at_ms = int(r["at"].timestamp() * 1000)
        live.apply(Event(r["seq"], r["type"], r["ticket"], at_ms, orjson.loads(r["data"])))
    return live


@pytest_asyncio.fixture
async def nodes(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Persister]]]:
    """Start persisters, each with its own connections, as separate nodes would have."""
    assert settings.redis_url is not None and settings.database_url is not None
    made: list[tuple[Persister, Store, Database]] = []

    async def start(**options: Any) -> Persister:
        store = Store(settings.redis_url.reveal(), settings.redis_prefix)  # type: ignore[union-attr]
        db = await Database.connect(settings.database_url.reveal(), max_size=2)  # type: ignore[union-attr]
        persister = Persister(store, db, **{**FAST, **options})
        await persister.start()
        made.append((persister, store, db))
        return persister

    yield start
    for persister, store, db in made:
        await persister.stop()
        await store.close()
        await db.close()


async def make_queues(store: Store, db: Database, venue: str, count: int) -> list[str]:
    queues = [f"p{i}-{secrets.token_hex(3)}" for i in range(count)]
    for queue in queues:
        await db.upsert_queue(queue, venue, queue)
        await store.upsert_queue(queue, venue, queue)
    return queues


async def random_operations(store: Store, queues: list[str], seed: int, ops: int) -> Counter[str]:
    """Joins, leaves, calls, finishes and state changes; counts of the ticket events made."""
    rng = random.Random(seed)
    waiting: dict[str, list[tuple[int, str]]] = {q: [] for q in queues}
    called: dict[str, list[int]] = {q: [] for q in queues}
    made: Counter[str] = Counter()
    for _ in range(ops):
        queue = rng.choice(queues)
        roll = rng.random()
        try:
            if roll < 0.45:
                r = await store.join(queue, rng.choice([None, "Ann"]), None)
                waiting[queue].append((int(r["number"]), str(r["nonce"])))
                made["joined"] += 1
            elif roll < 0.55 and waiting[queue]:
                number, nonce = waiting[queue].pop(rng.randrange(len(waiting[queue])))
                await store.leave(queue, number, nonce)
                made["left"] += 1
            elif roll < 0.8:
                r = await store.call_next(queue, rng.choice([None, "desk 1", "desk 2"]), None)
                if not r.get("empty"):
                    called[queue].append(int(r["number"]))
                    made["called"] += 1
            elif roll < 0.95 and called[queue]:
                status = rng.choice(["served", "no_show"])
                await store.finish(queue, called[queue].pop(0), status)
                made[status] += 1
            else:
                await store.set_state(queue, rng.choice(["pause", "resume", "close", "open"]))
        except ApiError:
            pass  # a leave of a called ticket that was since finished, a paused queue...
        await asyncio.sleep(rng.random() * 0.004)  # spread the work over a second or two
    return made


async def test_every_event_once_across_nodes_that_crash(
    settings: Settings, store: Store, db: Database, make_venue: Any, nodes: Any
) -> None:
    """Must-show 1 and 3: three nodes, one crashing after a commit, one cancelled mid-batch."""
    assert settings.database_url is not None
    dsn = settings.database_url.reveal()
    venue, _ = await make_venue("Exactly once")
    queues = await make_queues(store, db, venue, 5)
    persisters = [await nodes(batch=20, consumer=f"node-{i}") for i in range(3)]
    work = [asyncio.create_task(random_operations(store, queues, s, 250)) for s in range(4)]
    await asyncio.sleep(0.3)
    persisters[0].crash_after_commit = True  # dies between its next commit and XACK
    await asyncio.sleep(0.3)
    await persisters[1].stop()  # cancelled wherever it is, like a killed process
    await nodes(batch=50, consumer="node-3")
    made = sum([await w for w in work], Counter[str]())

    async def crashed() -> bool:  # feed it until it has taken a batch and died on it
        if persisters[0].alive:
            made["joined"] += 1
            await store.join(queues[0], None, None)
        return not persisters[0].alive

    await wait_for(crashed, 20, "node-0 to crash after a commit")
    await wait_for(lambda: all_persisted(dsn, store, queues), 30, "every event persisted")
    logged_kinds: Counter[str] = Counter()
    for queue in queues:
        rows = await logged(dsn, queue)
        assert_exact_log(rows, await live_seq(store, queue))
        logged_kinds.update(r["type"] for r in rows)
        # The log replays to exactly the live queue: same line, same calls, same state.
        live = replay(rows)
        assert sorted(live.line) == [n for n, _ in await store.waiting_list(queue)]
        assert sorted(live.called) == sorted(n for n, _ in await store.called_list(queue))
        meta = await store.queue_meta(queue)
        assert meta is not None and live.state == meta["state"]
        assert live.next_number == int(meta["next"])
    for kind in ("joined", "left", "called", "served", "no_show"):
        assert logged_kinds[kind] == made[kind], kind

    # Nothing stays pending, and each stream is trimmed down to nothing once all is persisted.
    async def drained() -> bool:
        for queue in queues:
            key = store.keys(queue).events
            if (await store.redis.xpending(key, PERSISTER_GROUP))["pending"]:
                return False
            if await store.redis.xlen(key):
                return False
        return True

    await wait_for(drained, 10, "streams acknowledged and trimmed")


async def test_a_batch_redelivered_after_a_crash_adds_no_rows(
    settings: Settings, store: Store, db: Database, make_venue: Any, nodes: Any
) -> None:
    """Must-show 3: killed between insert and acknowledge, the batch comes again, no extra row."""
    assert settings.database_url is not None
    dsn = settings.database_url.reveal()
    venue, _ = await make_venue("Crash")
    (queue,) = await make_queues(store, db, venue, 1)
    for i in range(60):
        await store.join(queue, f"c{i}", None)
    first = await nodes(consumer="doomed", claim_idle_ms=60_000)
    first.crash_after_commit = True

    async def crashed() -> bool:
        return not first.alive

    await wait_for(crashed, 10, "the first persister to crash after its commit")
    key = store.keys(queue).events
    assert len(await logged(dsn, queue)) == 60  # committed...
    pending = await store.redis.xpending(key, PERSISTER_GROUP)
    assert pending["pending"] == 60  # ...but never acknowledged
    assert await store.redis.xlen(key) == 60  # so not trimmed either

    second = await nodes(consumer="survivor", claim_idle_ms=300)

    async def acknowledged() -> bool:
        return bool((await store.redis.xpending(key, PERSISTER_GROUP))["pending"] == 0)

    await wait_for(acknowledged, 10, "the survivor to claim and acknowledge the batch")
    assert second.written >= 60 and second.committed == 0  # redelivered, nothing inserted
    for i in range(15):
        await store.join(queue, f"d{i}", None)
    await wait_for(lambda: all_persisted(dsn, store, [queue]), 10, "new joins persisted")
    rows = await logged(dsn, queue)
    assert_exact_log(rows, 75)
    assert second.committed == 15


async def test_nonce_is_logged_and_malformed_entries_do_not_block(
    settings: Settings, store: Store, db: Database, make_venue: Any, nodes: Any
) -> None:
    assert settings.database_url is not None
    dsn = settings.database_url.reveal()
    venue, _ = await make_venue("Fields")
    (queue,) = await make_queues(store, db, venue, 1)
    joined = await store.join(queue, "Zoë", None)
    await store.redis.xadd(store.keys(queue).events, {"garbage": "1"})
    await store.call_next(queue, "desk 7", None)
    await nodes()
    await wait_for(lambda: all_persisted(dsn, store, [queue]), 10, "events persisted")
    rows = await logged(dsn, queue)
    import orjson

    data = [orjson.loads(r["data"]) for r in rows]
    score = data[0].pop("score")  # where the ticket stands in the line (protocol/score.py)
    assert int(score) > 0
    assert data[0] == {"waiting": 1, "name": "Zoë", "nonce": joined["nonce"], "priority": 0}
    assert data[1]["counter"] == "desk 7" and data[1]["waiting"] == 0
    assert isinstance(data[1]["waited_ms"], int)

    async def trimmed() -> bool:
        return await store.redis.xlen(store.keys(queue).events) == 0

    await wait_for(trimmed, 10, "the malformed entry acknowledged and trimmed away")


# -- PostgreSQL stopped under load (must-show 2) --------------------------------------------------


@pytest.fixture
def own_postgres(tmp_path: Path) -> Any:
    server = EmbeddedPostgres(tmp_path / "own-pg")
    server.start()
    yield server
    server.stop()


async def _prepare(dsn: str) -> str:
    db = await Database.connect(dsn, max_size=1)
    try:
        await db.migrate()
        key_id, key, digest = new_staff_key()
        await db.create_venue("Outage", key_id, digest)
        return key
    finally:
        await db.close()


@pytest.mark.parametrize(
    "outage_s",
    [
        pytest.param(6.0, id="6s"),
        pytest.param(60.0, id="60s", marks=[pytest.mark.soak, pytest.mark.timeout(400)]),
    ],
)
async def test_postgres_outage_loses_nothing(
    own_postgres: EmbeddedPostgres, start_server: Any, store: Store, outage_s: float
) -> None:
    """Must-show 2: joins and calls go on, events wait in Redis, the backlog drains after."""
    dsn = own_postgres.dsn
    key = await _prepare(dsn)
    auth = {"Authorization": f"Bearer {key}"}
    node = start_server(DATABASE_URL=dsn)
    queue = f"o-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        assert (await http.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
        failures: list[str] = []
        stop = asyncio.Event()
        load = asyncio.create_task(_steady_load(http, queue, auth, stop, failures))
        await asyncio.sleep(2.0)
        own_postgres.stop()
        seen_behind = await _watch_readyz(http, time.monotonic() + outage_s)
        own_postgres.start()

        async def drained() -> bool:
            r = await http.get("/readyz")
            p = r.json()["persistence"]
            return r.status_code == 200 and p["backlog_events"] == 0 and p["held_events"] == 0

        drain_s = await wait_for(drained, 60, "the backlog to drain after PostgreSQL returned")
        stop.set()
        joins = await load
    assert failures == [], failures[:5]  # the live queue never noticed
    assert seen_behind, "readyz never said PostgreSQL was down with events waiting"
    assert joins > outage_s * 5
    await wait_for(lambda: all_persisted(dsn, store, [queue]), 10, "every event persisted")
    rows = await logged(dsn, queue)
    assert_exact_log(rows, await live_seq(store, queue))
    assert sum(r["type"] == "joined" for r in rows) == joins
    assert drain_s < 60


async def _steady_load(
    http: httpx.AsyncClient,
    queue: str,
    auth: dict[str, str],
    stop: asyncio.Event,
    failures: list[str],
) -> int:
    """About 20 joins and 8 calls a second until `stop`; the number of joins made."""
    joins = 0
    tick = 0
    while not stop.is_set():
        r = await http.post(f"/v1/queues/{queue}/tickets", json={"name": f"s{tick}"})
        if r.status_code == 201:
            joins += 1
        else:
            failures.append(f"join {r.status_code} {r.text}")
        if tick % 5 in (1, 3):
            r = await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
            if r.status_code not in (200, 204):
                failures.append(f"call {r.status_code} {r.text}")
        tick += 1
        await asyncio.sleep(0.05)
    return joins


async def _watch_readyz(http: httpx.AsyncClient, until: float) -> bool:
    """Poll /readyz through the outage; True once it said 503 with events waiting in Redis."""
    seen = False
    while time.monotonic() < until:
        r = await http.get("/readyz")
        body = r.json()
        behind = body["persistence"]["backlog_events"] > 0
        if r.status_code == 503 and not body["postgres"] and behind:
            seen = seen or body["persistence"]["backlog_age_s"] > 0
        await asyncio.sleep(0.25)
    return seen


async def _http_operations(
    clients: list[httpx.AsyncClient], queues: list[str], auth: dict[str, str], seed: int, ops: int
) -> Counter[str]:
    """Random joins, leaves, calls, finishes and pauses sent to random nodes; events made."""
    rng = random.Random(seed)
    tickets: list[dict[str, Any]] = []
    called: list[str] = []
    made: Counter[str] = Counter()
    for _ in range(ops):
        http = rng.choice([c for c in clients if not c.is_closed])
        queue = rng.choice(queues)
        roll = rng.random()
        if roll < 0.45:
            r = await http.post(f"/v1/queues/{queue}/tickets", json={"name": "x"})
            if r.status_code == 201:
                tickets.append(r.json())
                made["joined"] += 1
        elif roll < 0.55 and tickets:
            t = tickets.pop(rng.randrange(len(tickets)))
            bearer = {"Authorization": f"Bearer {t['token']}"}
            r = await http.delete(f"/v1/tickets/{t['ticket_id']}", headers=bearer)
            made["left"] += r.status_code == 200
        elif roll < 0.8:
            r = await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
            if r.status_code == 200:
                called.append(r.json()["ticket_id"])
                made["called"] += 1
        elif roll < 0.95 and called:
            status = rng.choice(["served", "no-show"])
            r = await http.post(f"/v1/tickets/{called.pop(0)}/{status}", headers=auth)
            made[status.replace("-", "_")] += r.status_code == 200
        else:
            await http.post(f"/v1/queues/{queue}/{rng.choice(['pause', 'resume'])}", headers=auth)
    return made


@pytest.mark.timeout(180)
async def test_every_event_once_across_server_processes(
    start_server: Any, make_venue: Any, store: Store, settings: Settings
) -> None:
    """Must-show 1 end to end: three servers, one killed with SIGKILL in the middle of it."""
    assert settings.database_url is not None
    dsn = settings.database_url.reveal()
    _, key = await make_venue("Nodes")
    auth = {"Authorization": f"Bearer {key}"}
    servers = [start_server() for _ in range(3)]
    clients = [httpx.AsyncClient(base_url=s.url, timeout=10) for s in servers]
    queues = [f"n{i}-{secrets.token_hex(3)}" for i in range(3)]
    for queue in queues:
        r = await clients[0].put(f"/v1/queues/{queue}", json={}, headers=auth)
        assert r.status_code == 201
    first = await asyncio.gather(
        *(_http_operations(clients, queues, auth, s, 150) for s in range(3))
    )
    servers[0].kill()  # whatever it held unacknowledged is claimed by the others
    await clients[0].aclose()
    second = await asyncio.gather(
        *(_http_operations(clients, queues, auth, s, 100) for s in (7, 8))
    )
    made = sum([*first, *second], Counter[str]())

    await wait_for(lambda: all_persisted(dsn, store, queues), 60, "every event persisted")
    kinds: Counter[str] = Counter()
    for queue in queues:
        rows = await logged(dsn, queue)
        assert_exact_log(rows, await live_seq(store, queue))
        kinds.update(r["type"] for r in rows)
        live = replay(rows)
        assert sorted(live.line) == [n for n, _ in await store.waiting_list(queue)]
    for kind in ("joined", "left", "called", "served", "no_show"):
        assert kinds[kind] == made[kind], kind
    for c in clients[1:]:
        await c.aclose()
