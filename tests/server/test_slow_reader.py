"""One watcher that never reads does not delay anyone else, and is closed after a bounded time
(architecture.md inv. 5)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx

from tests.server.watchers import RecordingWatcher, settle
from tests.wsraw import RawWebSocket

CALLS = 20


async def test_a_stuck_reader_delays_nobody_and_is_closed(
    start_server: Any, make_venue: Any
) -> None:
    _, key = await make_venue()
    auth = {"Authorization": f"Bearer {key}"}
    server = start_server(VQ_WS_PING_S="1", VQ_STUCK_CLOSE_S="2")
    http = httpx.AsyncClient(base_url=server.url, timeout=10)
    queue = f"s-{secrets.token_hex(3)}"
    await http.put(f"/v1/queues/{queue}", json={"name": "S"}, headers=auth)
    tickets = [(await http.post(f"/v1/queues/{queue}/tickets")).json() for _ in range(CALLS + 30)]

    # The stuck client: a tiny receive buffer, and it never reads a byte after the handshake.
    stuck = await RawWebSocket.connect("127.0.0.1", server.port, rcvbuf=1024)
    stuck.send_frame(0x1, json.dumps({"type": "watch", "token": tickets[-1]["token"]}).encode())
    watchers = []
    for t in tickets[CALLS:-1]:
        w = RecordingWatcher(t["ticket_id"], t["token"], server.ws_url)
        await w.start()
        watchers.append(w)
    assert await settle(watchers, http, queue, key) == []

    delays = []
    for _ in range(CALLS):
        before = [len(w.messages) for w in watchers]
        sent = time.perf_counter()
        assert (await http.post(f"/v1/queues/{queue}/call-next", headers=auth)).status_code == 200
        deadline = sent + 5
        while any(len(w.messages) == n for w, n in zip(watchers, before, strict=True)):
            assert time.perf_counter() < deadline, "an update did not arrive within 5 s"
            await asyncio.sleep(0.002)
        delays.append(time.perf_counter() - sent)
    # Every update reached every reading watcher promptly while the stuck one sat there.
    assert max(delays) < 0.5, delays
    assert await settle(watchers, http, queue, key) == []

    # The stuck connection is closed by the server within a bounded time (ping timeout 1 s).
    deadline = time.monotonic() + 10
    while (await http.get("/readyz")).json()["watchers"] != len(watchers):
        assert time.monotonic() < deadline, "the stuck watcher was never closed"
        await asyncio.sleep(0.1)
    assert not any(w.closed for w in watchers)
    stuck.close()
    for w in watchers:
        await w.stop()
    await http.aclose()
