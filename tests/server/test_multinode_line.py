"""Staff shaping one line from 3 nodes at once: priority joins, call-next, remove (one and bulk),
recall, requeue, transfer and leave, concurrently, with the drift check off (notices alone).

At quiet every watcher shows what its ticket really is: a waiting one its place, a called one
`called`, a finished one its status (removed ones, bulk or not, `removed`); a requeued one has
followed its ticket back into the line; a transferred one got `moved` and, as the bundled client
does, watches its new ticket in the other queue at its place there. The log shows each call took
the head of the line (priority first, FIFO within), no ticket was called twice, and every
placement kept FIFO within its priority. No node needed a resync beyond its first snapshot."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from protocol.score import priority_of
from server.config import Settings
from server.keys import queue_keys
from tests.server.watchers import RecordingWatcher, resync_counts, settle_states

NODES = 3
INITIAL = 90


async def logged(dsn: str, queue: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT seq, type, ticket, data FROM queue_events WHERE queue = $1 ORDER BY seq", queue
        )
    finally:
        await conn.close()


def check_the_log(rows: list[asyncpg.Record]) -> list[int]:
    """Replay the log by scores; assert calls took the head; the line at the end, in order."""
    line: dict[int, float] = {}
    for row in rows:
        data = orjson.loads(row["data"])
        kind, number = row["type"], row["ticket"]
        if kind in ("joined", "requeued", "transfer_in"):
            score = float(int(data["score"]))
            assert priority_of(score) == int(data["priority"])
            if kind == "joined":  # FIFO: after everyone already waiting at its priority
                band = [s for s in line.values() if priority_of(s) == int(data["priority"])]
                assert all(s < score for s in band)
            assert data.get("respaced") is None  # not expected at this size; would need a reset
            line[number] = score
        elif kind == "called":
            head = min(line, key=lambda n: line[n])
            assert number == head, "a call did not take the head of the line"
            del line[number]
        elif kind == "removed" and "numbers" in data:
            for n in str(data["numbers"]).split(","):
                line.pop(int(n), None)
        elif kind in ("left", "removed", "transferred"):
            line.pop(number, None)
    return sorted(line, key=lambda n: line[n])


@dataclass
class Shaping:
    """Three nodes, queue `a` shaped by staff, `b` the transfers' target, a watcher per ticket."""

    nodes: list[Any]
    http: list[httpx.AsyncClient]
    auth: dict[str, str]
    a: str
    b: str
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    watchers: list[RecordingWatcher] = field(default_factory=list)
    called: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Counter[str]] = field(default_factory=dict)  # action -> 200s by ticket id
    bulk_removed: int = 0
    sent_at: dict[str, list[float]] = field(default_factory=dict)  # "action tid": when asked

    def client(self) -> httpx.AsyncClient:
        return self.http[self.rng.randrange(NODES)]

    async def join_and_watch(self, i: int, priority: int | None) -> None:
        body: dict[str, Any] = {"name": f"p{i}"}
        headers = {}
        if priority is not None:
            body["priority"], headers = priority, self.auth
        r = await self.http[i % NODES].post(
            f"/v1/queues/{self.a}/tickets", json=body, headers=headers
        )
        assert r.status_code == 201, r.text
        t = r.json()
        self.tickets[t["ticket_id"]] = t
        url = self.nodes[(i + 1) % NODES].ws_url
        w = RecordingWatcher(t["ticket_id"], t["token"], url, follow=True)
        await w.start()
        self.watchers.append(w)

    async def priority_joins(self) -> None:
        for i in range(30):
            await self.join_and_watch(INITIAL + i, self.rng.randrange(10))

    async def calls(self, times: int = 20) -> None:
        for _ in range(times):
            r = await self.client().post(
                f"/v1/queues/{self.a}/call-next", json={"counter": "d"}, headers=self.auth
            )
            assert r.status_code in (200, 204), r.text
            if r.status_code == 200:
                self.called.append(r.json())

    async def on_tickets(self, action: str, times: int, body: Any) -> None:
        for _ in range(times):
            # Recall and requeue need a called ticket: mostly pick one that was called.
            called = [c["ticket_id"] for c in self.called if c["ticket_id"] in self.tickets]
            wants_called = action in ("recall", "requeue") and called and self.rng.random() < 0.7
            tid = self.rng.choice(called if wants_called else sorted(self.tickets))
            sent = time.perf_counter()
            r = await self.client().post(
                f"/v1/tickets/{tid}/{action}", json=body(), headers=self.auth
            )
            assert r.status_code in (200, 409), r.text
            if r.status_code == 200:
                self.done.setdefault(action, Counter())[tid] += 1
                self.sent_at.setdefault(f"{action} {tid}", []).append(sent)
            await asyncio.sleep(0.01)

    async def bulk_remove(self) -> None:
        ids = self.rng.sample(sorted(self.tickets), 6)
        r = await self.client().post(
            f"/v1/queues/{self.a}/remove", json={"ticket_ids": ids}, headers=self.auth
        )
        assert r.status_code == 200, r.text
        self.bulk_removed = int(r.json()["removed"])

    async def leaves(self) -> None:
        for _ in range(8):
            t = self.tickets[self.rng.choice(sorted(self.tickets))]
            r = await self.client().delete(
                f"/v1/tickets/{t['ticket_id']}", headers={"Authorization": f"Bearer {t['token']}"}
            )
            assert r.status_code in (200, 409), r.text

    async def everything(self) -> None:
        rng = self.rng
        await asyncio.gather(
            self.priority_joins(),
            self.calls(),
            self.calls(),
            self.on_tickets("remove", 8, dict),
            self.on_tickets("recall", 10, dict),
            self.on_tickets("requeue", 12, lambda: {"position": rng.randrange(1, 30)}),
            self.on_tickets("transfer", 8, lambda: {"queue": self.b}),
            self.bulk_remove(),
            self.leaves(),
        )
        # Most requeued tickets are called again by now: put two called ones back far down
        # the line, again while a priority join and calls come in.
        called = [c["ticket_id"] for c in self.called if c["ticket_id"] in self.tickets]
        await asyncio.gather(
            self.requeue_called(called[-1]),
            self.requeue_called(called[-2]),
            self.join_and_watch(INITIAL + 30, 9),
            self.calls(2),
        )
        # And a last one with nothing after it: no later change moves it, so its watcher's
        # place comes from the requeue's own notice.
        await self.requeue_called(self.called[-1]["ticket_id"], 3)

    async def requeue_called(self, tid: str, position: int = 40) -> None:
        r = await self.client().post(
            f"/v1/tickets/{tid}/requeue", json={"position": position}, headers=self.auth
        )
        assert r.status_code in (200, 409), r.text
        if r.status_code == 200:
            self.done.setdefault("requeue", Counter())[tid] += 1


def the_moves_were_followed(run: Shaping, by_origin: dict[str, RecordingWatcher]) -> None:
    """Each kind of move happened, and each moved ticket's watcher was told and followed."""
    done = run.done
    assert run.bulk_removed > 0 and all(done.get(a) for a in ("remove", "recall", "transfer"))
    for tid in done["transfer"]:  # `moved`, then the new ticket in the other queue
        w = by_origin[tid]
        assert w.hops == [tid] and w.ticket_id.startswith(f"{run.b}."), (tid, w.kinds)
    for tid in done["recall"]:  # asked after its watch began (a first frame came): it is told
        w = by_origin[tid]
        if w.arrived and w.arrived[0] < max(run.sent_at[f"recall {tid}"]):
            assert any(m.get("recall") is True for m in w.messages), (tid, w.kinds)
    # A requeued ticket still waiting shows its place after `called` (checked exact above).
    back = [by_origin[tid] for tid in done.get("requeue", {})]
    assert any(w.last_state[0] == "waiting" and "called" in w.kinds for w in back), "no requeue"
    removed = [w for w in run.watchers if w.last_state[0] == "removed"]
    assert len(removed) >= run.bulk_removed


async def complete_log(settings: Settings, queue: str) -> list[Any]:
    """The queue's logged events once PostgreSQL has every one Redis counted (its `seq`)."""
    assert settings.redis_url is not None and settings.database_url is not None
    redis = aioredis.from_url(settings.redis_url.reveal())
    try:
        seq = int(await redis.hget(queue_keys(settings.redis_prefix, queue).meta, "seq"))
    finally:
        await redis.aclose()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        rows = await logged(settings.database_url.reveal(), queue)
        if len(rows) == seq and rows[-1]["seq"] == seq:
            return list(rows)
        assert loop.time() < deadline, f"the log did not catch up: {len(rows)} of {seq}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_shaping_from_three_nodes_keeps_every_watcher_exact(
    start_server: Any, make_venue: Any, settings: Settings
) -> None:
    _, key = await make_venue("Shaping")
    auth = {"Authorization": f"Bearer {key}"}
    nodes = [start_server(VQ_RESYNC_CHECK_S="0") for _ in range(NODES)]  # notices alone
    http = [httpx.AsyncClient(base_url=n.url, timeout=20) for n in nodes]
    run = Shaping(nodes, http, auth, f"a-{secrets.token_hex(3)}", f"b-{secrets.token_hex(3)}")
    for q in (run.a, run.b):
        assert (await http[0].put(f"/v1/queues/{q}", json={}, headers=auth)).status_code == 201
    await asyncio.gather(*(run.join_and_watch(i, None) for i in range(INITIAL)))
    await run.everything()

    # No ticket called twice, except once more after each time staff put it back in line.
    requeued = run.done.get("requeue", Counter())
    for tid, times in Counter(c["ticket_id"] for c in run.called).items():
        assert times <= 1 + requeued[tid], tid
    # Every watcher, those moved by staff included, shows its ticket's truth and keeps it.
    wrong = await settle_states(run.watchers, http[0], timeout_s=15)
    assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
    await asyncio.sleep(1.0)  # quiet for a second: still exact
    assert await settle_states(run.watchers, http[0], timeout_s=0) == []
    by_origin = {w.hops[0] if w.hops else w.ticket_id: w for w in run.watchers}
    the_moves_were_followed(run, by_origin)
    for node in nodes:  # the notices alone did it: no snapshot beyond each queue's first
        counts = await resync_counts(node.url)
        assert counts["initial"] >= 1 and "drift" in counts, counts
        assert {k: v for k, v in counts.items() if k != "initial" and v} == {}, counts

    final = check_the_log(await complete_log(settings, run.a))
    r = await http[0].get(f"/v1/queues/{run.a}/tickets", headers=auth)
    assert [t["number"] for t in r.json()["waiting"]] == final
    for w in run.watchers:
        await w.stop()
    for c in http:
        await c.aclose()
