"""A node that misses notices, or loses its pub/sub connection, corrects its watchers within a
few seconds, with no reconnect (architecture.md inv. 3).

The test servers run with the drift check off (tests/conftest.py): a gap or a lost subscription
must be repaired by the notice path itself, and each test asserts from `/readyz` which resync
did it and that no drift resync happened. Only a lost *last* notice needs the drift check: its
own test turns the check on."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from server.store import Store
from tests.server.watchers import RecordingWatcher, mismatches, resync_counts, settle


async def setup_line(
    start_server: Any, make_venue: Any, nodes: int = 1, size: int = 30, **env: str
) -> Any:
    _, key = await make_venue()
    servers = [start_server(**env) for _ in range(nodes)]
    http = httpx.AsyncClient(base_url=servers[0].url, timeout=10)
    queue = f"r-{secrets.token_hex(3)}"
    await http.put(
        f"/v1/queues/{queue}", json={"name": "R"}, headers={"Authorization": f"Bearer {key}"}
    )
    watchers = []
    for i in range(size):
        t = (await http.post(f"/v1/queues/{queue}/tickets")).json()
        w = RecordingWatcher(t["ticket_id"], t["token"], servers[i % nodes].ws_url)
        await w.start()
        watchers.append(w)
    assert await settle(watchers, http, queue, key) == []
    return servers, http, queue, key, watchers


async def finish(http: httpx.AsyncClient, watchers: list[RecordingWatcher]) -> None:
    for w in watchers:
        await w.stop()
    await http.aclose()


async def test_lost_last_notices_are_caught_by_the_periodic_check(
    start_server: Any, make_venue: Any, silent: Store
) -> None:
    servers, http, queue, key, watchers = await setup_line(
        start_server, make_venue, VQ_RESYNC_CHECK_S="0.5"
    )
    for _ in range(3):
        await silent.call_next(queue, None, None)
    assert len(await mismatches(watchers, http, queue, key)) > 0  # they really missed it
    assert await settle(watchers, http, queue, key, timeout_s=5) == []
    assert not any(w.closed for w in watchers)
    assert (await resync_counts(servers[0].url))["drift"] >= 1  # and the check repaired it
    await finish(http, watchers)


async def test_a_gap_in_seq_triggers_a_resync(
    start_server: Any, make_venue: Any, silent: Store
) -> None:
    servers, http, queue, key, watchers = await setup_line(start_server, make_venue)
    await silent.call_next(queue, None, None)
    t = watchers[10]
    await silent.leave(queue, int(t.ticket_id.rsplit(".", 1)[1]), await nonce_of(silent, queue, t))
    await http.post(f"/v1/queues/{queue}/call-next", headers={"Authorization": f"Bearer {key}"})
    assert await settle(watchers, http, queue, key, timeout_s=5) == []
    assert t.kinds[-1] == "status" and not any(w.closed for w in watchers if w is not t)
    counts = await resync_counts(servers[0].url)
    assert counts["gap"] >= 1 and counts["drift"] == 0, counts
    await finish(http, watchers)


async def nonce_of(store: Store, queue: str, w: RecordingWatcher) -> str:
    view = await store.ticket(queue, int(w.ticket_id.rsplit(".", 1)[1]))
    assert view is not None
    return view.nonce


async def test_killed_subscription_is_corrected_without_reconnecting(
    start_server: Any, make_venue: Any, store: Store, silent: Store
) -> None:
    servers, http, queue, key, watchers = await setup_line(start_server, make_venue, nodes=2)
    killed = await store.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) >= 2  # one subscription per node
    for _ in range(2):  # changes nobody hears while the nodes reconnect
        await silent.call_next(queue, None, None)
    await http.post(f"/v1/queues/{queue}/call-next", headers={"Authorization": f"Bearer {key}"})
    assert await settle(watchers, http, queue, key, timeout_s=5) == []
    # and the nodes keep following live changes afterwards
    await http.post(f"/v1/queues/{queue}/call-next", headers={"Authorization": f"Bearer {key}"})
    await asyncio.sleep(0)
    assert await settle(watchers, http, queue, key, timeout_s=5) == []
    assert not any(w.closed for w in watchers[3:])
    for server in servers:
        counts = await resync_counts(server.url)
        assert counts["resubscribe"] >= 1 and counts["drift"] == 0, counts
    await finish(http, watchers)
