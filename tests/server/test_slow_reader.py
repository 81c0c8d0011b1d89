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
from tests.wsraw import RawWebSocket, never_reading_watcher

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

    # The stuck connection is closed by the server within a bounded time (ping timeout 1 s):
    # its client's stream reader still drains the socket, so no backlog builds up, and it is
    # the keepalive that cuts it.
    deadline = time.monotonic() + 10
    while (await http.get("/readyz")).json()["watchers"] != len(watchers):
        assert time.monotonic() < deadline, "the stuck watcher was never closed"
        await asyncio.sleep(0.1)
    closes = (await http.get("/readyz")).json()["closes"]
    assert closes["ping_timeout"] == 1 and closes["stuck_outbox"] == 0, closes
    assert not any(w.closed for w in watchers)
    stuck.close()
    for w in watchers:
        await w.stop()
    await http.aclose()


READERS, FILLER, STUCK = 500, 900, 50
STUCK_CLOSE_S = 2.0
# A fan-out that waited on stuck sockets would hold every reader's update for at least
# STUCK_CLOSE_S; the 200 ms p99 target itself is the harness's (slow-readers scenario, make
# bench): this machine is shared, and timing targets do not belong in tests.
STALL_BOUND_S = STUCK_CLOSE_S / 2


async def test_fifty_stuck_readers_among_five_hundred_are_closed_by_the_stuck_outbox_path(
    start_server: Any, make_venue: Any
) -> None:
    """50 sockets that never read, their kernel buffers full, beside 500 that read.

    The line is [500 readers][900 filler tickets][50 stuck]. Filler tickets leaving move only
    the stuck watchers behind them, so their frames pile up (a small receive buffer, the
    server's bounded send buffer) until their outboxes hold a backlog the sweeper must cut,
    while call-nexts move every reader and time its update. Pings are far off (60 s), so only
    the stuck-outbox path should close the stuck ones, and /readyz says which path did.
    """
    _, key = await make_venue()
    auth = {"Authorization": f"Bearer {key}"}
    server = start_server(VQ_WS_PING_S="60", VQ_STUCK_CLOSE_S=str(STUCK_CLOSE_S), VQ_FLUSH_MS="0")
    http = httpx.AsyncClient(base_url=server.url, timeout=20)
    queue = f"s-{secrets.token_hex(3)}"
    await http.put(f"/v1/queues/{queue}", json={"name": "S"}, headers=auth)
    readers_t = await join_many(http, queue, READERS)
    filler = await join_many(http, queue, FILLER)
    stuck_t = await join_many(http, queue, STUCK)

    stuck = [await never_reading_watcher(server.port, t["token"]) for t in stuck_t]
    readers = [RecordingWatcher(t["ticket_id"], t["token"], server.ws_url) for t in readers_t]
    await asyncio.gather(*(w.start() for w in readers))
    assert await settle(readers, http, queue, key, timeout_s=30) == []
    assert (await http.get("/readyz")).json()["watchers"] == READERS + STUCK

    pump = asyncio.get_running_loop().create_task(leave_all(http, filler))
    delays = await timed_calls_until_closed(http, queue, auth, readers, pump)
    print(f"{len(filler)} filler tickets had not left yet")
    filler.clear()  # the pump stops
    await pump
    closes = (await http.get("/readyz")).json()["closes"]
    assert closes == {
        "stuck_outbox": STUCK,  # every stuck one, by the stuck-outbox path and no other
        "backlog_overflow": 0,
        "ping_timeout": 0,
        "drain_timeout": 0,
        "close_timeout": 0,
    }
    assert (await http.get("/readyz")).json()["watchers"] == READERS
    delays.sort()
    p99 = delays[int(len(delays) * 0.99)]
    print(f"readers' update p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")
    assert p99 < STALL_BOUND_S, f"p99 {p99 * 1000:.0f} ms (max {delays[-1] * 1000:.0f})"
    assert not any(w.closed for w in readers)
    assert await settle(readers, http, queue, key) == []
    for sock in stuck:
        sock.close()
    for w in readers:
        await w.stop()
    await http.aclose()


async def join_many(http: httpx.AsyncClient, queue: str, count: int) -> list[dict[str, Any]]:
    """`count` tickets (16 joins at a time); all behind any joined before this call."""
    gate = asyncio.Semaphore(16)

    async def one() -> dict[str, Any]:
        async with gate:
            r = await http.post(f"/v1/queues/{queue}/tickets")
        assert r.status_code == 201, r.text
        ticket: dict[str, Any] = r.json()
        return ticket

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def leave_all(http: httpx.AsyncClient, pending: list[dict[str, Any]]) -> None:
    """Each ticket leaves (4 at a time) until none is left in `pending`: every leave moves
    only the tickets behind it."""

    async def worker() -> None:
        while pending:
            t = pending.pop()
            r = await http.delete(
                f"/v1/tickets/{t['ticket_id']}",
                headers={"Authorization": f"Bearer {t['token']}"},
            )
            assert r.status_code == 200, r.text

    await asyncio.gather(*(worker() for _ in range(4)))


async def timed_calls_until_closed(
    http: httpx.AsyncClient,
    queue: str,
    auth: dict[str, str],
    readers: list[RecordingWatcher],
    pump: asyncio.Task[None],
) -> list[float]:
    """Call next about 5 times a second until every stuck watcher is closed; for each call,
    each waiting reader's delay until its next frame."""
    delays: list[float] = []
    deadline = time.monotonic() + 45
    while (await http.get("/readyz")).json()["closes"]["stuck_outbox"] < STUCK:
        assert time.monotonic() < deadline, "the stuck watchers were not all closed in 45 s"
        waiting = [w for w in readers if w.last_position is not None]  # all behind the call
        counts = [len(w.messages) for w in waiting]
        assert (await http.post(f"/v1/queues/{queue}/call-next", headers=auth)).status_code == 200
        # From reading the answer, as the harness measures: the fan-out's delay, not the time
        # a loaded machine takes to serve the request (a frame may even beat the answer).
        answered = time.perf_counter()
        while any(len(w.messages) == n for w, n in zip(waiting, counts, strict=True)):
            assert time.perf_counter() < answered + 10, "an update did not arrive within 10 s"
            await asyncio.sleep(0.005)
        delays.extend(w.arrived[n] - answered for w, n in zip(waiting, counts, strict=True))
        await asyncio.sleep(0.2)
    if pump.done():
        await pump  # its errors, if any
    return delays
