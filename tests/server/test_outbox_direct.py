"""The fan-out's straight path (`server.outbox.offer_each`, `Outbox.direct`) over real sockets:
a frame skips the outbox only while nothing waits in it, the client keeps up and the connection
is open, so frames keep their order, a stuck client holds at most the high water in the
transport, and nothing follows a close frame or reaches a closed transport."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from server.outbox import HIGH_WATER_BYTES, SENT, ChannelOutbox, Outbox, Writer, offer_each
from tests.server.threaded import RunningServer, eventually, serve_in_thread
from tests.wsraw import RawWebSocket

# Frames as short as a position's (under 126 bytes, the ones that can go straight), padded
# so that a few hundred fill a socket's buffers.
PAD = "x" * 96


@dataclass
class To:
    """Whom offer_each writes to: anything that fronts an outbox."""

    outbox: Outbox
    direct: Writer | None = None
    headers: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        self.outbox.fronted_by(self)


def event(i: int) -> bytes:
    frame = f'{{"i":{i},"pad":"{PAD}"}}'.encode()
    assert len(frame) < 126
    return frame


results: dict[str, Any] = {}  # written by the app (the server's thread), read by the tests


def no_sweeper(outbox: Outbox) -> None:
    """The app retries its outbox itself: a sweeper could retry at any moment."""


async def app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    outbox = ChannelOutbox(scope["extensions"]["vqueue.push"]["channel"], True, no_sweeper)
    mode = scope["path"].strip("/")
    results[f"{mode}.direct_at_open"] = outbox.direct is not None
    await SCENARIOS[mode](mode, outbox, receive, send)


def straight(mode: str, front: To) -> bool:
    """Whether the front may skip its outbox now; notes whether the two agree on it."""
    agree = front.direct is front.outbox.direct
    results[f"{mode}.front_agrees"] = results.get(f"{mode}.front_agrees", True) and agree
    return front.direct is not None


async def keeps_order(mode: str, outbox: ChannelOutbox, receive: Any, send: Any) -> None:
    """Events (never replaced) until some are held, then more while the client catches up."""
    to, i = [To(outbox)], 0
    results[f"{mode}.front_at_open"] = straight(mode, to[0])
    while outbox.pending < 3:
        offer_each(to, [event(i)], False)
        i += 1
        if i % 100 == 0:
            await asyncio.sleep(0)
    results[f"{mode}.direct_while_held"] = straight(mode, to[0])
    results[f"{mode}.held"] = i
    await eventually(lambda: f"{mode}.reading" in results)  # the test says so
    # The client reads again: the transport drains and resumes writing, the backlog is still
    # there (nobody retried it), so what comes now must wait behind it.
    await eventually(lambda: outbox.channel.buffered_bytes() == 0)
    offer_each(to * 2, [event(i), event(i + 1)], False)
    results[f"{mode}.direct_before_retry"] = straight(mode, to[0])
    assert outbox.retry()
    results[f"{mode}.direct_after_retry"] = straight(mode, to[0])
    offer_each(to, [event(i + 2)], False)
    outbox.fronted_by(None)  # as the fan-out lets a watcher go
    results[f"{mode}.let_go_straight"] = to[0].direct is not None
    results[f"{mode}.last"] = i + 2
    await receive()


async def bounds_the_transport(mode: str, outbox: ChannelOutbox, receive: Any, send: Any) -> None:
    """Positions (each replaces the last held) to a client that never reads."""
    to, largest = [To(outbox)], 0
    for i in range(5000):
        offer_each(to, [event(i)], True)
        largest = max(largest, outbox.channel.buffered_bytes())
        if i % 100 == 0:
            await asyncio.sleep(0)
    results[f"{mode}.largest_buffer"] = largest
    results[f"{mode}.pending"] = outbox.pending
    results[f"{mode}.direct"] = straight(mode, to[0])
    outbox.abort("test")
    results[f"{mode}.direct_after_abort"] = straight(mode, to[0])
    await receive()


async def nothing_after_close(mode: str, outbox: ChannelOutbox, receive: Any, send: Any) -> None:
    await send({"type": "websocket.close", "code": 1000})
    sent = SENT.value
    offer_each([To(outbox)], [event(1)], True)
    results[f"{mode}.counted"] = SENT.value - sent
    results[f"{mode}.closed"] = outbox.closed
    await receive()


async def nothing_to_a_lost_socket(
    mode: str, outbox: ChannelOutbox, receive: Any, send: Any
) -> None:
    results[f"{mode}.disconnect"] = (await receive())["type"]
    sent = SENT.value
    try:
        offer_each([To(outbox)], [event(1)], True)
    except RuntimeError as exc:  # uvloop: "unable to perform operation ... handler is closed"
        results[f"{mode}.error"] = str(exc)
    results[f"{mode}.counted"] = SENT.value - sent
    results[f"{mode}.closed"] = outbox.closed


SCENARIOS = {
    "order": keeps_order,
    "bounded": bounds_the_transport,
    "close": nothing_after_close,
    "lost": nothing_to_a_lost_socket,
    "reset": nothing_to_a_lost_socket,
}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(app)
    yield running
    running.stop()


async def wait_for(key: str, timeout_s: float = 10.0) -> Any:
    await eventually(lambda: key in results, timeout_s)
    return results[key]


async def test_a_frame_never_overtakes_a_held_one(server: RunningServer) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", server.port, path="/order", rcvbuf=4096)
    # The app never reads from the client, so the client's reader stays paused until here.
    raw.writer.transport.pause_reading()
    held = await wait_for("order.held")
    assert results["order.direct_at_open"] and results["order.front_at_open"]
    assert not results["order.direct_while_held"]
    raw.writer.transport.resume_reading()
    results["order.reading"] = True
    last = await wait_for("order.last")
    seen = []
    while len(seen) < last + 1:
        opcode, payload = await asyncio.wait_for(raw.recv_frame(), 5)
        assert opcode == 0x1
        seen.append(orjson.loads(payload)["i"])
    assert seen == list(range(last + 1)), f"out of order after {held} frames held"
    assert not results["order.direct_before_retry"]  # frames still waited behind the backlog
    assert results["order.direct_after_retry"]
    assert results["order.front_agrees"]  # the watcher's copy of the straight path
    assert not results["order.let_go_straight"]
    raw.close()


async def test_a_stuck_client_holds_no_more_than_the_high_water(server: RunningServer) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", server.port, path="/bounded", rcvbuf=4096)
    raw.writer.transport.pause_reading()  # and never reads again
    largest = await wait_for("bounded.largest_buffer")
    assert HIGH_WATER_BYTES < largest <= HIGH_WATER_BYTES + len(event(4999)) + 2
    assert results["bounded.pending"] == 1  # the newest position waits in the outbox
    assert not results["bounded.direct"]
    assert not results["bounded.direct_after_abort"]
    assert results["bounded.front_agrees"]
    raw.close()


async def test_nothing_follows_the_close_frame(server: RunningServer) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", server.port, path="/close")
    opcode, payload = await asyncio.wait_for(raw.recv_frame(), 5)
    assert (opcode, struct.unpack("!H", payload[:2])[0]) == (0x8, 1000)
    raw.send_frame(0x8, payload[:2])  # our answer: the server then ends the connection
    with pytest.raises(asyncio.IncompleteReadError):
        await asyncio.wait_for(raw.recv_frame(), 5)
    assert await wait_for("close.closed")
    assert results["close.counted"] == 0
    raw.close()


async def test_nothing_is_written_to_a_lost_connection(server: RunningServer) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", server.port, path="/lost")
    raw.writer.transport.abort()
    assert await wait_for("lost.closed")
    assert results["lost.disconnect"] == "websocket.disconnect"
    assert "lost.error" not in results
    assert results["lost.counted"] == 0


async def test_nothing_is_written_to_a_reset_connection(server: RunningServer) -> None:
    """A reset reaches the server as a read error, with no end of stream before it."""
    raw = await RawWebSocket.connect("127.0.0.1", server.port, path="/reset")
    sock = raw.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.writer.transport.abort()  # closes with SO_LINGER 0: an RST, not a FIN
    assert await wait_for("reset.closed")
    assert results["reset.disconnect"] == "websocket.disconnect"
    assert "reset.error" not in results
    assert results["reset.counted"] == 0
