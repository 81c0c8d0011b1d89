"""The fan-out's straight path (`server.outbox.offer_each`, `Outbox.direct`) over real sockets:
a frame skips the outbox only while nothing waits in it, the client keeps up and the connection
is open, so frames keep their order, a stuck client holds at most the high water in the
transport, and nothing follows a close frame or reaches a closed transport.

Every test runs twice: with the loop in C (`server._straight`, which writes to the socket itself
while the transport holds nothing unsent) and with the loop in Python. The C loop must also never
write past bytes waiting in the transport, nor under TLS, where only the transport may write."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import trustme

from server import outbox as outbox_module
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
    fd: int = -1

    def __post_init__(self) -> None:
        self.outbox.fronted_by(self)


def event(i: int) -> bytes:
    frame = f'{{"i":{i},"pad":"{PAD}"}}'.encode()
    assert len(frame) < 126
    return frame


results: dict[str, Any] = {}  # written by the app (the server's thread), read by the tests
drained = threading.Event()  # the test's client has read all the socket held


def socket_writes() -> int:
    """Frames the C loop wrote itself so far (0 without it)."""
    if outbox_module._native_offer_each is None:
        return 0
    from server import _straight

    return _straight.socket_writes()


@pytest.fixture(autouse=True, params=["c", "python"])
def loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which `offer_each` loop runs: the server's thread reads the module's choice per call."""
    kept = outbox_module._native_offer_each
    if request.param == "c":
        if outbox_module._BUILT is None:
            if shutil.which("cc") or shutil.which("gcc"):
                pytest.fail("server._straight was not built, though a C compiler is here")
            pytest.skip("no C compiler here: server._straight was not built")
        outbox_module._native_offer_each = outbox_module._BUILT
    else:
        outbox_module._native_offer_each = None
    results.clear()
    drained.clear()
    yield request.param
    outbox_module._native_offer_each = kept


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


async def never_past_the_transport(
    mode: str, outbox: ChannelOutbox, receive: Any, send: Any
) -> None:
    """Bytes the transport holds (the socket was full) go first, even once the socket has room
    again before the loop has told the transport so: then a frame written to the socket itself
    would overtake them. The loop is held still while the client empties the socket."""
    to, i = [To(outbox)], 0
    while outbox.channel.buffered_bytes() == 0:  # until the socket is full and the rest waits
        offer_each(to, [event(i)], False)
        i += 1
    results[f"{mode}.still_straight"] = straight(mode, to[0])  # far below the high water
    results[f"{mode}.full"] = i
    assert drained.wait(10)  # blocks the server's loop: the transport cannot write meanwhile
    before = socket_writes()
    offer_each(to, [event(i)], False)
    results[f"{mode}.past_the_transport"] = socket_writes() - before
    await eventually(lambda: outbox.channel.buffered_bytes() == 0)
    before = socket_writes()
    offer_each(to, [event(i + 1)], False)
    results[f"{mode}.written_itself"] = socket_writes() - before
    results[f"{mode}.last"] = i + 1
    await receive()


async def only_the_transport_under_tls(
    mode: str, outbox: ChannelOutbox, receive: Any, send: Any
) -> None:
    to = [To(outbox)]
    results[f"{mode}.fd"] = (outbox.fd, to[0].fd)
    before = socket_writes()
    for i in range(50):
        offer_each(to, [event(i)], False)
        if i % 10 == 0:
            await asyncio.sleep(0)
    results[f"{mode}.written_itself"] = socket_writes() - before
    results[f"{mode}.last"] = 49
    await receive()


SCENARIOS = {
    "behind": never_past_the_transport,
    "tls": only_the_transport_under_tls,
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


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, ssl.SSLContext]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    running = serve_in_thread(app, ssl_certfile=str(pem), ssl_keyfile=str(pem))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    yield running, client
    running.stop()


async def frames_until(raw: RawWebSocket, last: int) -> list[int]:
    seen: list[int] = []
    while len(seen) < last + 1:
        opcode, payload = await asyncio.wait_for(raw.recv_frame(), 5)
        assert opcode == 0x1
        seen.append(orjson.loads(payload)["i"])
    return seen


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


def parse_frames(data: bytearray) -> list[int]:
    """The short unmasked text frames at the front of `data`, consumed; a partial one stays."""
    seen = []
    while len(data) >= 2 and len(data) >= 2 + data[1]:
        assert data[0] == 0x81 and data[1] < 126
        seen.append(orjson.loads(bytes(data[2 : 2 + data[1]]))["i"])
        del data[: 2 + data[1]]
    return seen


async def test_a_frame_never_overtakes_bytes_in_the_transport(
    server: RunningServer, loop_kind: str
) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", server.port, path="/behind", rcvbuf=4096)
    raw.writer.transport.pause_reading()
    full = await wait_for("behind.full")
    raw.writer.transport.resume_reading()
    data = bytearray()
    # The server's loop is held: whatever arrives now was in the socket. Quiet means empty.
    with contextlib.suppress(TimeoutError):
        while True:
            data += await asyncio.wait_for(raw.reader.read(1 << 16), 0.5)
    drained.set()
    last = await wait_for("behind.last")
    seen = parse_frames(data)
    assert len(seen) < full  # some frames still waited in the transport: the case at hand
    while len(seen) < last + 1:
        data += await asyncio.wait_for(raw.reader.read(1 << 16), 5)
        seen += parse_frames(data)
    assert seen == list(range(last + 1))
    assert results["behind.still_straight"]
    assert results["behind.past_the_transport"] == 0
    # The C loop does write by itself once nothing waits (else the test above proves little).
    assert results["behind.written_itself"] == (1 if loop_kind == "c" else 0)
    raw.close()


async def test_under_tls_only_the_transport_writes(
    tls_server: tuple[RunningServer, ssl.SSLContext], loop_kind: str
) -> None:
    running, client = tls_server
    raw = await RawWebSocket.connect("127.0.0.1", running.port, path="/tls", tls=client)
    last = await wait_for("tls.last")
    assert await frames_until(raw, last) == list(range(50))  # TLS records the client can read
    assert results["tls.fd"] == (-1, -1)
    assert results["tls.written_itself"] == 0
    raw.close()
