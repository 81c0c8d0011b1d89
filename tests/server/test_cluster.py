"""Three server processes on a real Redis Cluster (3 primaries, 3 replicas): concurrent joins,
leaves and calls through every node leave each watcher at its true place once things are quiet,
and so they do when the queue's primary is SIGKILLed mid-test and a replica takes over.

Every node runs with the periodic drift check off (VQ_RESYNC_CHECK_S=0): only the notices, and the
resyncs that a failover's resubscription starts, can keep the watchers exact.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.config import Settings
from server.db import Database
from server.store import Store
from tests.conftest import ServerProcess, server_env
from tests.rediscluster import RedisCluster
from tests.server.test_multinode import assert_every_call_was_told
from tests.server.watchers import RecordingWatcher, mismatches, settle

NODES = 3
INITIAL = 120
EXTRA_JOINS = 30
CALLS = 45
LEAVES = 20
RETRY_FOR_S = 30.0  # a request the failover interrupts is retried (same Idempotency-Key)
LOSS_WINDOW_S = 1.0  # README "Scaling out": what an acknowledged write can lose on failover


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path / "cluster")
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def cluster_servers(
    redis_cluster: RedisCluster, settings: Settings, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    env = server_env(
        settings, REDIS_URL=redis_cluster.url, VQ_REDIS_CLUSTER="true", VQ_RESYNC_CHECK_S="0"
    )
    servers: list[ServerProcess] = []
    try:
        for i in range(NODES):
            server = ServerProcess(dict(env))
            server.log_path = tmp_path / f"node-{i}.log"
            server.start()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "Traceback" not in server.log_text(), server.log_text()[-4000:]


@dataclass
class Run:
    """One workload through every node, with when each write was acknowledged."""

    nodes: list[ServerProcess]
    clients: list[httpx.AsyncClient]
    key: str
    queue: str
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    joins: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    calls: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    watchers: list[RecordingWatcher] = field(default_factory=list)
    retried: int = 0
    half_called: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def send(self, node: int, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The request, retried with its Idempotency-Key while the store is failing over."""
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": secrets.token_hex(8)}
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                r = await self.clients[node].request(method, url, headers=headers, **kwargs)
                if r.status_code != 503:
                    return r
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{method} {url} failed for {RETRY_FOR_S} s"
            self.retried += 1
            node = (node + 1) % len(self.clients)
            await asyncio.sleep(0.1)

    async def join_and_watch(self, i: int) -> None:
        r = await self.send(i % NODES, "POST", f"/v1/queues/{self.queue}/tickets", json={})
        assert r.status_code == 201, r.text
        ticket = r.json()
        self.joins.append((ticket, time.monotonic()))
        for node in {i % NODES, (i + 1) % NODES} if i % 5 == 0 else {i % NODES}:
            w = RecordingWatcher(ticket["ticket_id"], ticket["token"], self.nodes[node].ws_url)
            await w.start()
            self.watchers.append(w)

    async def call(self, count: int) -> None:
        for _ in range(count):
            node = self.rng.randrange(NODES)
            url = f"/v1/queues/{self.queue}/call-next"
            r = await self.send(
                node, "POST", url, json={"counter": f"desk {node}"}, headers=self.auth
            )
            assert r.status_code == 200, r.text
            self.calls.append((r.json(), time.monotonic()))
            if len(self.calls) >= CALLS // 2:
                self.half_called.set()
            await asyncio.sleep(0.01)

    async def leave(self, count: int) -> None:
        for _ in range(count):
            ticket, _ = self.joins[self.rng.randrange(len(self.joins))]
            r = await self.send(
                self.rng.randrange(NODES),
                "DELETE",
                f"/v1/tickets/{ticket['ticket_id']}",
                headers={"Authorization": f"Bearer {ticket['token']}"},
            )
            assert r.status_code in (200, 409), r.text
            await asyncio.sleep(0.01)


async def open_run(nodes: list[ServerProcess], make_venue: Any) -> Run:
    _, key = await make_venue("Cluster")
    clients = [httpx.AsyncClient(base_url=n.url, timeout=20) for n in nodes]
    run = Run(nodes, clients, key, f"c-{secrets.token_hex(3)}")
    r = await clients[0].put(f"/v1/queues/{run.queue}", json={"name": "C"}, headers=run.auth)
    assert r.status_code == 201, r.text
    await asyncio.gather(*(run.join_and_watch(i) for i in range(INITIAL)))
    return run


async def busy(run: Run) -> None:
    extra = (run.join_and_watch(INITIAL + i) for i in range(EXTRA_JOINS))
    await asyncio.gather(run.call(CALLS), run.call(CALLS), run.leave(LEAVES), *extra)


async def lost_joins(run: Run) -> list[tuple[dict[str, Any], float]]:
    """Acknowledged joins the live store no longer knows (their token does not open them)."""
    lost = []
    for ticket, acked in run.joins:
        r = await run.clients[0].get(
            f"/v1/tickets/{ticket['ticket_id']}",
            headers={"Authorization": f"Bearer {ticket['token']}"},
        )
        if r.status_code != 200:
            lost.append((ticket, acked))
    return lost


async def assert_exact_at_quiet(
    run: Run, skip: Callable[[RecordingWatcher], bool], failover: bool
) -> None:
    watched = [w for w in run.watchers if not skip(w)]
    wrong = await settle(watched, run.clients[0], run.queue, run.key)
    assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
    # Quiet for a while longer: still exact. The drift check is off, so nothing but the notices
    # and the failover's resyncs could have corrected them.
    await asyncio.sleep(1.0)
    assert await mismatches(watched, run.clients[0], run.queue, run.key) == []
    for client in run.clients:
        resyncs = (await client.get("/readyz")).json()["resyncs"]
        assert resyncs["drift"] == 0, resyncs  # the check is off: it cannot have run
        if not failover:  # and nothing but the first snapshot and the notices: no gap, no resync
            assert sum(resyncs.values()) == resyncs["initial"] == 1, resyncs


@pytest_asyncio.fixture
async def run(cluster_servers: list[ServerProcess], make_venue: Any) -> AsyncIterator[Run]:
    opened = await open_run(cluster_servers, make_venue)
    try:
        yield opened
    finally:  # a failed test must not leave sockets for the next test's warnings check
        await close_run(opened)


async def close_run(run: Run) -> None:
    for w in run.watchers:
        await w.stop()
    for c in run.clients:
        await c.aclose()


@pytest.mark.timeout(240)
async def test_watchers_on_every_node_end_exact_on_a_redis_cluster(
    run: Run, redis_cluster: RedisCluster, db: Database
) -> None:
    await busy(run)

    counts = Counter(c["ticket_id"] for c, _ in run.calls)
    assert len(run.calls) == 2 * CALLS and max(counts.values()) == 1  # no ticket called twice
    assert await lost_joins(run) == []
    await assert_exact_at_quiet(run, skip=lambda w: False, failover=False)
    assert_every_call_was_told(run.watchers, [c for c, _ in run.calls])
    await assert_persisted(run, redis_cluster, db)


async def assert_persisted(run: Run, cluster: RedisCluster, db: Database) -> None:
    """The persisters wrote every event of two queues in different shards to PostgreSQL (one
    command may not name streams of two slots: each stream is read in its own shard)."""
    home = cluster.primary_for(f"{{{run.queue}}}").port
    names = (f"{run.queue}-{i}" for i in range(100))
    other = next(n for n in names if cluster.primary_for(f"{{{n}}}").port != home)
    r = await run.clients[1].put(f"/v1/queues/{other}", json={"name": "X"}, headers=run.auth)
    assert r.status_code == 201, r.text
    for _ in range(3):
        assert (await run.send(2, "POST", f"/v1/queues/{other}/tickets", json={})).is_success
    store = Store(cluster.url, run.nodes[0].env["VQ_REDIS_PREFIX"], cluster=True)
    seqs = await store.seqs([run.queue, other])
    expected = {run.queue: seqs[0][1], other: seqs[1][1]}
    await store.close()
    query = "SELECT queue, count(*), max(seq) FROM queue_events GROUP BY queue"
    deadline = time.monotonic() + 20
    async with db.pool.acquire() as conn:
        while True:
            found = {q: (n, last) for q, n, last in await conn.fetch(query)}
            if found == {q: (s, s) for q, s in expected.items()} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert found == {q: (s, s) for q, s in expected.items()}


@pytest.mark.timeout(300)
async def test_exact_after_the_queue_primary_is_killed_mid_test(
    run: Run, redis_cluster: RedisCluster
) -> None:
    primary = redis_cluster.primary_for(f"{{{run.queue}}}")

    async def kill_mid_test() -> float:
        await run.half_called.wait()  # half the calls acknowledged: the line is moving
        redis_cluster.kill(primary)
        return time.monotonic()

    killed_at, _ = await asyncio.gather(kill_mid_test(), busy(run))
    promoted = redis_cluster.wait_failover(primary, f"{{{run.queue}}}")
    assert promoted.port != primary.port

    lost = await lost_joins(run)
    late = [(t["ticket_id"], round(killed_at - acked, 3)) for t, acked in lost]
    assert all(killed_at - acked < LOSS_WINDOW_S for _, acked in lost), late
    # A call acknowledged just before the kill may be lost the same way, and its ticket called
    # again after the failover: a repeat is allowed only for a call from that window.
    called_at: dict[str, float] = {}
    for call, at in sorted(run.calls, key=lambda item: item[1]):
        first = called_at.setdefault(call["ticket_id"], at)
        assert first == at or killed_at - LOSS_WINDOW_S < first <= killed_at, (call, first, at)

    gone = {t["token"] for t, _ in lost}
    await assert_exact_at_quiet(run, skip=lambda w: w.token in gone, failover=True)
    # The kill came mid-test: calls were acknowledged on both sides of it. (Whether a request
    # saw the failover as a 503 depends on how long redis-py's own retries take to reach the
    # promoted replica on a busy machine, so `run.retried` is not asserted.)
    acknowledged = [at for _, at in run.calls]
    assert min(acknowledged) < killed_at < max(acknowledged), (killed_at, acknowledged)
    for client in run.clients:  # and every node resubscribed after it (the first is "initial")
        assert (await client.get("/readyz")).json()["resyncs"]["resubscribe"] >= 1
