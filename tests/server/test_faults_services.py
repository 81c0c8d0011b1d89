"""Redis and PostgreSQL, run by the test as external services, killed with SIGKILL under load
(joins flowing from clients) and restarted: what was acknowledged is still there.

The nodes run with the drift check off (VQ_RESYNC_CHECK_S=0) and the tests assert that no drift
resync happened: watchers are put right by the notice path alone.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis

from server.auth import new_staff_key
from server.config import Secret, Settings
from server.db import Database
from server.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServiceError
from server.keys import queue_keys
from tests.conftest import ServerProcess, migrate_database
from tests.server.faults import (
    JoinLoad,
    assert_log_complete,
    call_next,
    lost_tickets,
    outside_tmp,
    running,
    settle_after_restart,
    wait_persisted,
)
from tests.server.watchers import RecordingWatcher

__all__ = ["outside_tmp"]  # a fixture
WATCHED = 60
# (kills, seconds of load before each): one in make test; in make soak, ~60 s of kills
ROUNDS = [(1, 2.0), pytest.param(5, 12.0, marks=pytest.mark.soak)]


@pytest.fixture
def own_redis(outside_tmp: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(outside_tmp / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres(outside_tmp: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(outside_tmp / "postgres")
    migrate_database(server.start())
    yield server
    server.stop()


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Callable[[ServerProcess], httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def client(server: ServerProcess) -> httpx.AsyncClient:
        opened.append(httpx.AsyncClient(base_url=server.url, timeout=20))
        return opened[-1]

    yield client
    for c in opened:
        await c.aclose()


async def _new_queue(http: httpx.AsyncClient, key: str) -> str:
    queue = f"f-{secrets.token_hex(3)}"
    r = await http.put(f"/v1/queues/{queue}", json={"name": "F"}, headers=_auth(key))
    assert r.status_code == 201, r.text
    return queue


async def _venue_key(dsn: str) -> str:
    db = await Database.connect(dsn, max_size=1)
    try:
        key_id, key, digest = new_staff_key()
        await db.create_venue("Faults", key_id, digest)
        return key
    finally:
        await db.close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _load_for(load: JoinLoad, more: int, seconds: float) -> None:
    target, until = len(load.acked) + more, time.monotonic() + seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(load.acked) < target or time.monotonic() < until:
        assert loop.time() < deadline, "joins stalled"
        await asyncio.sleep(0.05)


async def _watched_on_two_nodes(
    settings: Settings,
    key: str,
    start_server: Callable[..., ServerProcess],
    clients: Callable[[ServerProcess], httpx.AsyncClient],
    count: int,
) -> tuple[list[httpx.AsyncClient], str, list[RecordingWatcher]]:
    """Two nodes with the drift check off, a new queue, and `count` tickets, each joined and
    watched on one node, the nodes alternating."""
    servers = [start_server(settings, VQ_RESYNC_CHECK_S="0") for _ in range(2)]
    http = [clients(s) for s in servers]
    queue = await _new_queue(http[0], key)
    watchers = []
    for i in range(count):
        r = await http[i % 2].post(f"/v1/queues/{queue}/tickets", json={})
        t = r.json()
        watchers.append(RecordingWatcher(t["ticket_id"], t["token"], servers[i % 2].ws_url))
        await watchers[-1].start()
    return http, queue, watchers


def _numbers_in_aof_copy(server: EmbeddedRedis, scratch: Path, prefix: str, queue: str) -> set[int]:
    """The ticket numbers a Redis started on a copy of the dead one's AOF holds: what the AOF
    alone kept, before any node or the recovery from PostgreSQL could touch it."""
    shutil.copytree(server.data_dir / "redis", scratch / "redis")
    copy = EmbeddedRedis(scratch)
    try:
        with redis.Redis.from_url(copy.start()) as client:
            return {int(n) for n in client.hkeys(queue_keys(prefix, queue).tickets)}
    finally:
        copy.stop()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize(("rounds", "gap_s"), ROUNDS)
@pytest.mark.timeout(300)
async def test_redis_killed_under_load_restarts_from_its_aof(
    settings: Settings,
    own_redis: EmbeddedRedis,
    start_server: Callable[..., ServerProcess],
    clients: Callable[[ServerProcess], httpx.AsyncClient],
    outside_tmp: Path,
    rounds: int,
    gap_s: float,
) -> None:
    with redis.Redis.from_url(own_redis.url, decode_responses=True) as client:
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert settings.database_url is not None
    key = await _venue_key(settings.database_url.reveal())
    ours = replace(settings, redis_url=Secret(own_redis.url))
    http, queue, watchers = await _watched_on_two_nodes(ours, key, start_server, clients, WATCHED)
    async with running(JoinLoad(http[0], queue)) as load:
        figures = []
        kills: list[float] = []
        for _ in range(rounds):
            await _load_for(load, 40, seconds=gap_s)  # joins older than the AOF's 1 s window
            await call_next(http[1], queue, key, 3)
            own_redis.kill()  # SIGKILL
            killed_at = time.monotonic()
            kept = _numbers_in_aof_copy(
                own_redis, outside_tmp / "scratch", ours.redis_prefix, queue
            )
            old = load.before(killed_at - 1.0)
            lost = [t["ticket_id"] for t in old if t["number"] not in kept]
            assert lost == [], f"{len(lost)} of {len(old)} joins acked >1 s before the kill lost"
            recent = load.before(killed_at)
            kills.append(killed_at)
            own_redis.start()  # same port, from the AOF
            restarted_at = time.monotonic()
            await call_next(http[1], queue, key, 2)  # the live path after the restart
            wrong = await settle_after_restart(watchers, http[0], queue, key)
            assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
            exact_s = time.monotonic() - restarted_at
            recent_lost = sum(1 for t in recent if t["number"] not in kept)
            figures.append((len(old), recent_lost, round(exact_s, 2)))
    assert await lost_tickets(http[0], load.must_survive(kills)) == []  # and through the API
    for h in http:
        resyncs = (await h.get("/readyz")).json()["resyncs"]
        assert resyncs["drift"] == 0, resyncs
        assert resyncs["resubscribe"] >= rounds, resyncs  # each node heard Redis come back
    print(
        f"\nFIGURES redis+AOF x{rounds}: (joins acked >1 s before the kill, all kept; acked "
        f"joins the AOF lost; watchers exact after restart, s) {figures}; refused {load.refused}"
    )
    for w in watchers:
        await w.stop()


def _restart_postgres(server: EmbeddedPostgres) -> float:
    """Start it again after a crash; orphaned backends can hold its memory a moment."""
    began = time.monotonic()
    for attempt in range(20):
        try:
            server.start()
            return time.monotonic() - began
        except EmbeddedServiceError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


async def _log_rows(dsn: str, queue: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT seq) FROM queue_events WHERE queue = $1", queue
        )
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


@pytest.mark.parametrize(("rounds", "gap_s"), ROUNDS)
@pytest.mark.timeout(300)
async def test_postgres_killed_while_events_flow_loses_and_doubles_nothing(
    settings: Settings,
    own_postgres: EmbeddedPostgres,
    start_server: Callable[..., ServerProcess],
    clients: Callable[[ServerProcess], httpx.AsyncClient],
    rounds: int,
    gap_s: float,
) -> None:
    key = await _venue_key(own_postgres.dsn)
    ours = replace(settings, database_url=Secret(own_postgres.dsn))
    server = start_server(ours, VQ_RESYNC_CHECK_S="0")
    http = clients(server)
    queue = await _new_queue(http, key)
    async with running(JoinLoad(http, queue)) as load:
        figures = []
        for _ in range(rounds):
            await _load_for(load, 40, seconds=gap_s)
            await call_next(http, queue, key, 3)
            own_postgres.kill()  # SIGKILL the postmaster, mid-transaction most likely
            await _load_for(load, 20, seconds=0.5)  # joins keep flowing while it is down
            restart_s = await asyncio.to_thread(_restart_postgres, own_postgres)
            await call_next(http, queue, key, 2)
            figures.append(round(restart_s, 2))
        await _load_for(load, 20, seconds=0.5)
    assert settings.redis_url is not None
    with redis.Redis.from_url(settings.redis_url.reveal()) as client:
        seq = int(client.hget(queue_keys(ours.redis_prefix, queue).meta, "seq") or 0)
    events = await wait_persisted(http, queue, key, seq, timeout_s=30)
    assert_log_complete(events, seq, [t["ticket_id"] for _, t in load.acked])
    assert await _log_rows(own_postgres.dsn, queue) == (seq, seq)
    print(
        f"\nFIGURES postgres x{rounds}: restart s {figures}; joins acked {len(load.acked)}; "
        f"events 1..{seq} each logged once"
    )


@pytest.mark.timeout(180)
async def test_redis_back_behind_what_watchers_were_shown_is_put_right(
    settings: Settings,
    own_redis: EmbeddedRedis,
    start_server: Callable[..., ServerProcess],
    clients: Callable[[ServerProcess], httpx.AsyncClient],
    outside_tmp: Path,
) -> None:
    """Redis comes back without its last writes, whose notices the watchers were already shown
    (the AOF's last second), and PostgreSQL never got them either. Connections never go back in
    seq and the changes made after the restart reuse the lost seqs, so no frame could put these
    watchers right: the nodes close them with 1012 and, reconnecting like the customer page,
    they are exact."""
    assert settings.database_url is not None
    dsn = settings.database_url.reveal()
    key = await _venue_key(dsn)
    ours = replace(settings, redis_url=Secret(own_redis.url))
    http, queue, watchers = await _watched_on_two_nodes(ours, key, start_server, clients, 20)
    await call_next(http[1], queue, key, 2)
    assert await settle_after_restart(watchers, http[0], queue, key) == []
    # The Redis it will come back as: everything up to here, and nothing after.
    own_redis.kill()
    older = outside_tmp / "older-redis"
    shutil.copytree(own_redis.data_dir / "redis", older)
    own_redis.start()
    with redis.Redis.from_url(own_redis.url) as client:
        kept_seq = int(client.hget(queue_keys(ours.redis_prefix, queue).meta, "seq") or 0)
    await call_next(http[1], queue, key, 3)  # shown to every watcher, then lost
    assert await settle_after_restart(watchers, http[0], queue, key) == []
    await wait_persisted(http[0], queue, key, kept_seq + 3, timeout_s=10)
    conn = await asyncpg.connect(dsn)
    try:  # as if the persister had not copied them yet
        await conn.execute(
            "DELETE FROM queue_events WHERE queue = $1 AND seq > $2", queue, kept_seq
        )
    finally:
        await conn.close()
    own_redis.kill()
    shutil.rmtree(own_redis.data_dir / "redis")
    shutil.copytree(older, own_redis.data_dir / "redis")
    own_redis.start()
    await call_next(http[1], queue, key, 2)  # after the restart: seqs the lost calls had
    wrong = await settle_after_restart(watchers, http[0], queue, key)
    assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
    rewound = 0
    for h in http:
        resyncs = (await h.get("/readyz")).json()["resyncs"]
        assert resyncs["drift"] == 0, resyncs
        rewound += resyncs["rewound"]
    assert rewound >= 1  # put right by reconnecting, on the node(s) that saw it
    assert sum(w.reconnects for w in watchers) >= len(watchers)
    for w in watchers:
        await w.stop()
