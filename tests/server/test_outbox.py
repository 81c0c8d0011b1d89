"""Outboxes and the sweeper over real sockets: a client that stops reading gets its frames held
(newest position only), never blocks the sender, and is aborted once stuck too long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from server.outbox import ChannelOutbox
from server.sweeper import Sweeper
from tests.server.threaded import serve_in_thread
from tests.wsraw import RawWebSocket

STUCK_CLOSE_S = 0.5
FRAMES = 3000
PAD = "x" * 2000


def frame(i: int) -> bytes:
    return f'{{"i":{i},"pad":"{PAD}"}}'.encode()


results: dict[str, Any] = {}


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Accepts, then pushes frames through a ChannelOutbox as the path asks."""
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    sweeper = Sweeper(STUCK_CLOSE_S)
    sweeper_task = asyncio.get_running_loop().create_task(sweeper.run())
    outbox = ChannelOutbox(scope["extensions"]["vqueue.push"]["channel"], True, sweeper.backlogged)
    mode = scope["path"].strip("/")
    started = time.monotonic()
    longest = 0.0
    for i in range(FRAMES):
        before = time.perf_counter()
        outbox.offer(frame(i), replaceable=(mode != "events"))
        longest = max(longest, time.perf_counter() - before)
        if outbox.closed:
            break
        if i % 100 == 0:
            await asyncio.sleep(0)
    results[f"{mode}.longest_offer_s"] = longest
    results[f"{mode}.pending"] = outbox.pending
    message = await receive()  # the client goes, or the sweeper aborts it
    results[f"{mode}.closed_after_s"] = time.monotonic() - started
    results[f"{mode}.disconnect"] = message.get("code")
    results[f"{mode}.aborted"] = sweeper.aborted
    sweeper_task.cancel()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    running = serve_in_thread(app)
    yield running.port
    running.stop()


async def wait_for(key: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while key not in results:
        assert time.monotonic() < deadline, f"{key} never recorded"
        await asyncio.sleep(0.02)
    return results[key]


async def test_stuck_reader_is_held_then_aborted(port: int) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", port, path="/positions", rcvbuf=4096)
    assert raw.status == 101
    # A client that reads at the same time gets frames in order and, at the end, the newest.
    async with connect(f"ws://127.0.0.1:{port}/healthy", max_size=None) as ws:
        seen = [-1]
        while seen[-1] < FRAMES - 1:
            seen.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5))["i"])
        assert seen == sorted(seen)
    assert await wait_for("positions.disconnect") == 1006
    assert results["positions.aborted"] == 1
    assert results["positions.pending"] == 1  # only the newest position was kept
    assert results["positions.longest_offer_s"] < 0.05  # never waited on the socket
    assert STUCK_CLOSE_S <= results["positions.closed_after_s"] < STUCK_CLOSE_S + 2
    assert results["healthy.aborted"] == 0
    raw.close()


async def test_too_many_undelivered_events_abort_at_once(port: int) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", port, path="/events", rcvbuf=4096)
    assert await wait_for("events.disconnect") == 1006
    assert results["events.closed_after_s"] < STUCK_CLOSE_S  # no need to wait: it overflowed
    raw.close()
