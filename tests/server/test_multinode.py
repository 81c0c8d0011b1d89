"""Several server processes on one Redis: concurrent joins, leaves and calls sent to different
nodes leave every watcher, once things are quiet, at its true place (architecture.md inv. 3),
with the drift check off: the notice path alone keeps them exact."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.server.watchers import RecordingWatcher, mismatches, resync_counts, settle

NODES = 3
INITIAL = 240
EXTRA_JOINS = 60
CALLS = 90
LEAVES = 40


@pytest.mark.timeout(240)
async def test_watchers_on_every_node_end_exact(start_server: Any, make_venue: Any) -> None:
    _, key = await make_venue("Multi")
    auth = {"Authorization": f"Bearer {key}"}
    nodes = [start_server() for _ in range(NODES)]
    clients = [httpx.AsyncClient(base_url=n.url, timeout=20) for n in nodes]
    queue = f"m-{secrets.token_hex(3)}"
    assert (
        await clients[0].put(f"/v1/queues/{queue}", json={"name": "M"}, headers=auth)
    ).status_code == 201
    rng = random.Random(7)
    tickets: dict[str, dict[str, Any]] = {}
    watchers: list[RecordingWatcher] = []

    async def join_and_watch(i: int) -> None:
        r = await clients[i % NODES].post(f"/v1/queues/{queue}/tickets", json={"name": f"p{i}"})
        assert r.status_code == 201, r.text
        t = r.json()
        tickets[t["ticket_id"]] = t
        # every ticket watched on one node; every fifth on a second node as well
        for node in {i % NODES, (i + 1) % NODES} if i % 5 == 0 else {i % NODES}:
            w = RecordingWatcher(t["ticket_id"], t["token"], nodes[node].ws_url)
            await w.start()
            watchers.append(w)

    await asyncio.gather(*(join_and_watch(i) for i in range(INITIAL)))
    called: list[dict[str, Any]] = []

    async def calls() -> None:
        for i in range(CALLS):
            node = rng.randrange(NODES)
            r = await clients[node].post(
                f"/v1/queues/{queue}/call-next", json={"counter": f"desk {node}"}, headers=auth
            )
            assert r.status_code == 200, r.text
            called.append(r.json())
            if i % 3 == 0:
                await asyncio.sleep(0.01)

    async def leaves() -> None:
        for _ in range(LEAVES):
            ticket = tickets[rng.choice(sorted(tickets))]
            r = await clients[rng.randrange(NODES)].delete(
                f"/v1/tickets/{ticket['ticket_id']}",
                headers={"Authorization": f"Bearer {ticket['token']}"},
            )
            assert r.status_code in (200, 409), r.text
            await asyncio.sleep(0.005)

    async def joins() -> None:
        await asyncio.gather(*(join_and_watch(INITIAL + i) for i in range(EXTRA_JOINS)))

    await asyncio.gather(calls(), calls(), leaves(), joins())

    # No ticket called twice, across nodes and concurrent callers.
    counts = Counter(c["ticket_id"] for c in called)
    assert max(counts.values()) == 1
    assert len(called) == 2 * CALLS

    wrong = await settle(watchers, clients[0], queue, key)
    assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
    await asyncio.sleep(1.0)  # quiet for a second: still exact
    assert await mismatches(watchers, clients[0], queue, key) == []

    assert_every_call_was_told(watchers, called)
    # The drift check is off (tests/conftest.py): the notices alone kept every node exact.
    for node in nodes:
        assert (await resync_counts(node.url))["drift"] == 0

    for w in watchers:
        await w.stop()
    for c in clients:
        await c.aclose()


def assert_every_call_was_told(
    watchers: list[RecordingWatcher], called: list[dict[str, Any]]
) -> None:
    """Every called ticket's watchers were told once, with the counter that called them."""
    by_ticket = {c["ticket_id"]: c for c in called}
    for w in watchers:
        seqs = [m["seq"] for m in w.messages if "seq" in m]
        assert seqs == sorted(seqs), "seq went backwards on one connection"
        call = by_ticket.get(w.ticket_id)
        if call is None:
            continue
        told = [m for m in w.messages if m["type"] == "called"]
        assert len(told) == 1, (w.ticket_id, w.messages[-5:])
        assert told[0]["counter"] == call["counter"]
