"""server.wsprotocol under a real uvicorn (uvloop, httptools) with real clients.

The servers run in threads with their own event loops; the app below records what it sees in
`SEEN`, and the tests poll it with a deadline. Misbehaving clients are raw sockets driven by
websockets' sans-I/O client protocol, so they send exactly the bytes a test needs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from server.httpprotocol import LimitedHttpProtocol, protocol_class
from server.wsframes import SansIOServer
from server.wsprotocol import PushChannel, WebSocketProtocol
from tests.server.threaded import RunningServer, eventually, live_objects, serve_in_thread

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(10)]

KIB = 1024
MAX_SIZE_BYTES = 64 * KIB


# The app: behaviour chosen by path, observations recorded under the `k` query parameter.

SEEN: dict[str, list[Any]] = {}
HOLDS: dict[str, threading.Event] = {}
_SEEN_LOCK = threading.Lock()


def record(key: str, item: Any) -> None:
    with _SEEN_LOCK:
        SEEN.setdefault(key, []).append(item)


def seen(key: str) -> list[Any]:
    with _SEEN_LOCK:
        return list(SEEN.get(key, []))


async def app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    key = parse_qs(scope["query_string"].decode()).get("k", [""])[0]
    channel: PushChannel = scope["extensions"]["vqueue.push"]["channel"]
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/where":
        record(key, (scope["client"], scope["server"], scope["scheme"]))
        path = "/echo"
    if path == "/deny":
        await send({"type": "websocket.close"})
        record(key, await receive())
        return
    if path == "/deny-body":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    record(key, ("before accept", channel.open, channel.send(b"early", True)))
    offered = list(scope["subprotocols"])
    subprotocol = next((p for p in ("vq1.msgpack", "vq1.json") if p in offered), None)
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    record(key, ("accepted", channel.open))
    await ROUTES[path](key, channel, receive, send)


async def echo(key: str, channel: PushChannel, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(key, message)
            record(key, ("after disconnect", channel.open, channel.send(b"late", True)))
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def interleave(key: str, channel: PushChannel, receive: Any, send: Any) -> None:
    count = int((await receive())["text"])
    for i in range(count):
        if i % 3 == 0:
            await send({"type": "websocket.send", "text": f"asgi {i}"})
        elif i % 3 == 1:
            assert channel.send(f"push {i}".encode(), True)
        else:
            assert channel.send(f"bin {i}".encode(), False)
    await send({"type": "websocket.close", "code": 1000, "reason": "done"})
    record(key, await receive())


async def push_to_stuck_client(key: str, channel: PushChannel, receive: Any, send: Any) -> None:
    """Pushes 1 KiB frames to a client that never reads, then aborts it."""
    frame, slowest_s, sent = b"x" * KIB, 0.0, 0
    while channel.buffered_bytes() < 2 * 1024 * KIB and sent < 100_000:
        started = time.perf_counter()
        assert channel.send(frame, False)
        slowest_s = max(slowest_s, time.perf_counter() - started)
        sent += 1
    record(key, ("pushed", sent, channel.buffered_bytes(), slowest_s))
    channel.abort()
    record(key, ("after abort", channel.open, channel.send(frame, False)))
    record(key, await receive())


async def asgi_send_to_stuck_client(
    key: str, channel: PushChannel, receive: Any, send: Any
) -> None:
    """Awaits ASGI sends of 16 KiB to a client that never reads."""
    largest_buffer, sent = 0, 0
    try:
        while True:
            await send({"type": "websocket.send", "bytes": b"y" * 16 * KIB})
            sent += 1
            largest_buffer = max(largest_buffer, channel.buffered_bytes())
    except ClientDisconnected:
        record(key, ("send raised", sent, largest_buffer))
    record(key, await receive())


async def wait_for_silent_client(key: str, channel: PushChannel, receive: Any, send: Any) -> None:
    """Clogs the socket of a client that never reads, then lets keepalive deal with it."""
    while channel.buffered_bytes() < 256 * KIB:
        channel.send(b"z" * KIB, False)
    record(key, await receive())
    deadline = time.monotonic() + 5
    while channel.buffered_bytes() > 0:  # polls for the transport to be gone
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    record(key, ("buffer after close", channel.buffered_bytes()))


async def hold_then_count(key: str, channel: PushChannel, receive: Any, send: Any) -> None:
    """Reads nothing until the test releases it, then counts the messages."""
    await asyncio.to_thread(HOLDS[key].wait, 8)
    count = 0
    while (await receive())["type"] == "websocket.receive":
        count += 1
    record(key, ("received", count))


async def crash(key: str, channel: PushChannel, receive: Any, send: Any) -> None:
    raise RuntimeError("boom")


ROUTES: dict[str, Callable[..., Any]] = {
    "/echo": echo,
    "/interleave": interleave,
    "/stuck": push_to_stuck_client,
    "/stuck-asgi": asgi_send_to_stuck_client,
    "/silent": wait_for_silent_client,
    "/hold": hold_then_count,
    "/crash": crash,
}


# Servers and clients


class FastTimeouts(WebSocketProtocol):
    close_timeout_s = 0.5


# The HTTP side that hands the upgrade over: vqueue's (as `vqueue serve` runs), which passes the
# request as it parsed it, and uvicorn's, which replays it as bytes for websockets to parse.
HTTP = {"vqueue": protocol_class(30.0), "uvicorn": "httptools"}


def start_server(
    ws: Any = "server.wsprotocol:WebSocketProtocol", http: str = "vqueue", **options: Any
) -> RunningServer:
    return serve_in_thread(app, ws, HTTP[http], ws_max_size=MAX_SIZE_BYTES, **options)


@pytest.fixture(scope="module", params=sorted(HTTP))
def srv(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server(http=request.param)
    yield running
    running.stop()


@pytest.fixture(scope="module", params=sorted(HTTP))
def fast_srv(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server(FastTimeouts, request.param, ws_ping_interval=0.3, ws_ping_timeout=0.5)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh_observations() -> None:
    """Each test reads what the app saw under its own keys: the run under the other HTTP
    protocol must not leave its observations behind."""
    SEEN.clear()


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails a test that made the server log an error or a traceback it did not expect."""
    yield
    unexpected = [
        r
        for r in caplog.records
        if (r.levelno >= logging.ERROR or r.exc_info) and r.getMessage() != EXPECTED_ERROR
    ]
    assert not unexpected, [r.getMessage() for r in unexpected]


EXPECTED_ERROR = "Exception in ASGI application"


class RawClient:
    """A blocking socket speaking WebSocket through websockets' sans-I/O client."""

    def __init__(self, port: int, path: str, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # set before connecting, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"))
        self.proto.send_request(self.proto.connect())
        self.flush()
        self.frames: list[Frame] = []
        while self.proto.state is State.CONNECTING:
            self.read()

    def flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.sock.sendall(data)

    def frame_bytes(self, frame: Frame) -> bytes:
        return frame.serialize(mask=True, extensions=[])

    def read(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        self.frames += [e for e in self.proto.events_received() if isinstance(e, Frame)]
        return bool(data)

    def read_close(self) -> Close | None:
        """Reads until the server ends the connection; the close frame it sent, if any."""
        while self.read():
            pass
        return self.proto.close_rcvd

    def close(self) -> None:
        self.sock.close()


# ASGI behaviour


async def test_echoes_text_and_binary(srv: RunningServer) -> None:
    async with connect(srv.url("/echo?k=echo")) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
    await eventually(lambda: len(seen("echo")) == 4)
    before, accepted, disconnect, after = seen("echo")
    assert before == ("before accept", False, False)
    assert accepted == ("accepted", True)
    assert disconnect["code"] == 1000
    assert after == ("after disconnect", False, False)


async def test_the_scope_names_both_ends_of_the_socket(srv: RunningServer) -> None:
    """Handed over with the addresses the HTTP side read (vqueue) or reading them again
    (uvicorn): the same scope either way, as the client's socket sees the two ends."""
    client = RawClient(srv.port, "/where?k=where")
    try:
        here, there = client.sock.getsockname(), client.sock.getpeername()
        await eventually(lambda: bool(seen("where")))
        assert seen("where")[0] == ((here[0], here[1]), (there[0], there[1]), "ws")
    finally:
        client.close()


async def test_negotiates_the_subprotocol_the_app_accepts(srv: RunningServer) -> None:
    async with connect(srv.url("/echo"), subprotocols=["vq1.json", "vq1.msgpack"]) as ws:
        assert ws.subprotocol == "vq1.msgpack"
    async with connect(srv.url("/echo")) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


async def test_close_before_accept_answers_403(srv: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(srv.url("/deny?k=deny")):
            pass
    assert refused.value.response.status_code == 403
    await eventually(lambda: len(seen("deny")) == 1)
    assert seen("deny")[0]["code"] == 1006


async def test_http_response_extension_sends_the_apps_response(srv: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(srv.url("/deny-body")):
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b"no entry"


async def test_never_negotiates_permessage_deflate(srv: RunningServer) -> None:
    async with connect(srv.url("/echo"), compression="deflate") as ws:
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_reassembles_fragmented_messages(srv: RunningServer) -> None:
    async with connect(srv.url("/echo")) as ws:
        await ws.send(["frag", "mented ", "tëxt"])
        assert await ws.recv() == "fragmented tëxt"
        # "é" split across two fragments must not be taken for invalid UTF-8.
        await ws.send([b"caf\xc3", b"\xa9"], text=True)
        assert await ws.recv() == "café"
        await ws.send([b"\x01", b"\x02\x03"])
        assert await ws.recv() == b"\x01\x02\x03"


async def test_message_over_max_size_closes_1009(srv: RunningServer) -> None:
    async with connect(srv.url("/echo?k=big"), max_size=None) as ws:
        await ws.send("x" * 70 * KIB)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await eventually(lambda: len(seen("big")) == 4)
    assert seen("big")[2]["code"] == 1009


async def test_invalid_utf8_closes_1007_without_traceback(srv: RunningServer) -> None:
    async with connect(srv.url("/echo?k=utf8")) as ws:
        await ws.send(b"ok \xff\xfe", text=True)  # a text frame that is not UTF-8
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007
    await eventually(lambda: len(seen("utf8")) == 4)
    assert seen("utf8")[2]["code"] == 1007  # and no_errors_logged checks for tracebacks


async def test_unmasked_frame_closes_1002(srv: RunningServer) -> None:
    client = RawClient(srv.port, "/echo")
    client.sock.sendall(b"\x81\x02hi")  # a client frame without a mask
    close = client.read_close()
    client.close()
    assert close is not None
    assert close.code == 1002


async def test_close_inside_a_fragmented_message_is_a_normal_close(srv: RunningServer) -> None:
    # Autobahn 7.1.5: first fragment, close 1000, last fragment.
    client = RawClient(srv.port, "/echo?k=7.1.5")
    client.sock.sendall(
        client.frame_bytes(Frame(Opcode.TEXT, b"frag1", fin=False))
        + client.frame_bytes(Frame(Opcode.CLOSE, Close(1000, "").serialize()))
        + client.frame_bytes(Frame(Opcode.CONT, b"frag2"))
    )
    close = client.read_close()
    client.close()
    assert close is not None
    assert close.code == 1000
    await eventually(lambda: len(seen("7.1.5")) == 4)
    assert seen("7.1.5")[2]["code"] == 1000


async def test_app_exception_closes_1011_and_logs_once(
    srv: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(srv.url("/crash")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    await eventually(lambda: any(r.getMessage() == EXPECTED_ERROR for r in caplog.records))
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert tracebacks[0].getMessage() == EXPECTED_ERROR


async def test_reading_stops_while_the_app_does_not_receive(srv: RunningServer) -> None:
    HOLDS["hold"] = threading.Event()
    client = RawClient(srv.port, "/hold?k=hold")
    client.proto.send_binary(b"m" * 60 * KIB)
    frame = b"".join(client.proto.data_to_send())
    # 2000 frames are 120 MB: the socket must stop taking them long before, and stay stopped.
    sent_frames, pending = send_until_stalled(client.sock, frame, 2000, stall_s=0.3)
    assert sent_frames < 400, "the server kept reading for an app that does not receive"
    HOLDS["hold"].set()
    client.sock.sendall(pending)
    client.proto.send_close(1000)
    client.flush()
    client.read_close()
    client.close()
    await eventually(lambda: ("received", sent_frames + 1) in seen("hold"))


def send_until_stalled(
    sock: socket.socket, frame: bytes, limit: int, stall_s: float
) -> tuple[int, bytes]:
    """Sends `frame` up to `limit` times; stops when the socket takes nothing for `stall_s`.

    Returns how many frames went whole, and the unsent rest of the frame that stalled.
    """
    sock.setblocking(False)
    sent = 0
    try:
        while sent < limit:
            pending = frame
            while pending:
                if not select.select([], [sock], [], stall_s)[1]:
                    return sent, pending
                pending = pending[sock.send(pending) :]
            sent += 1
        return sent, b""
    finally:
        sock.settimeout(5)


# The push channel


async def test_push_and_asgi_sends_arrive_in_call_order(srv: RunningServer) -> None:
    async with connect(srv.url("/interleave?k=order")) as ws:
        await ws.send("300")
        received = [message async for message in ws]
    expected = [(f"asgi {i}", f"push {i}", f"bin {i}".encode())[i % 3] for i in range(300)]
    assert received == expected
    assert ws.close_code == 1000
    assert ws.close_reason == "done"
    await eventually(lambda: len(seen("order")) == 3)
    assert seen("order")[2]["code"] == 1000


async def test_push_never_waits_for_a_client_that_does_not_read(srv: RunningServer) -> None:
    client = RawClient(srv.port, "/stuck?k=stuck", rcvbuf=4 * KIB)
    await eventually(lambda: len(seen("stuck")) == 5)
    _, _, pushed, after_abort, disconnect = seen("stuck")
    _, sent, buffered, slowest_s = pushed
    assert buffered >= 2 * 1024 * KIB  # the transport holds what the client does not take
    assert slowest_s < 0.25  # every send returned at once (a wait would last until abort)
    assert sent > 2 * 1024
    assert after_abort == ("after abort", False, False)
    assert disconnect["code"] == 1006
    client.close()


# Timeouts and shutdown


async def test_asgi_send_waits_for_the_client_then_gives_up(fast_srv: RunningServer) -> None:
    client = RawClient(fast_srv.port, "/stuck-asgi?k=stuck-asgi", rcvbuf=4 * KIB)
    await eventually(lambda: len(seen("stuck-asgi")) == 4)
    _, _, raised, disconnect = seen("stuck-asgi")
    _, sent, largest_buffer = raised
    assert largest_buffer <= 256 * KIB  # sends waited for the buffer to drain
    assert sent < 2000
    assert disconnect["code"] == 1006
    client.close()


async def test_keepalive_timeout_closes_then_aborts(fast_srv: RunningServer) -> None:
    client = RawClient(fast_srv.port, "/silent?k=silent", rcvbuf=4 * KIB)
    await eventually(lambda: len(seen("silent")) == 4)
    _, _, disconnect, after = seen("silent")
    assert disconnect["code"] == 1011
    assert after == ("buffer after close", 0)  # the transport was aborted with data unsent
    client.close()


async def test_shutdown_closes_with_1012() -> None:
    running = start_server()
    try:
        async with connect(running.url("/echo?k=shutdown")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            running.server.should_exit = True
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
        await eventually(lambda: len(seen("shutdown")) == 4)
        assert seen("shutdown")[2]["code"] == 1012
    finally:
        running.stop()


REFUSED_HANDSHAKES = {
    "post": b"POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "no-key": b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
    "bad-key": b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "version-8": b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    "non-ascii-path": b"GET /echo/caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
    "body": b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Content-Length: 2\r\n\r\nhi",
}


def first_answer(port: int, request: bytes) -> bytes:
    """The status line the server answers `request` with (b"" if it just closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


async def test_a_refused_handshake_is_answered_alike_whichever_http_side_hands_it_over() -> None:
    servers = {name: start_server(http=name) for name in HTTP}
    try:
        for case, request in REFUSED_HANDSHAKES.items():
            answers = {
                name: await asyncio.to_thread(first_answer, running.port, request)
                for name, running in servers.items()
            }
            assert answers["vqueue"] == answers["uvicorn"], case
            assert not answers["vqueue"].startswith(b"HTTP/1.1 101"), case
    finally:
        for running in servers.values():
            running.stop()


async def test_an_ended_connection_is_freed_without_the_cyclic_collector() -> None:
    """However a socket ends, its objects go by reference counting, the moment it does. Left
    in cycles, a reconnect storm's thousands of dead sockets wait for the collector, which
    then frees them all in one pass (most of a second at 3,000; BENCHMARKS.md, Profile)."""
    running = start_server()  # vqueue's HTTP side hands the upgrade over, as `vqueue serve` runs
    state = running.server.server_state
    gc.collect()
    gc.disable()  # a cycle left behind stays until the check below
    try:
        async with connect(running.url("/echo?k=free-closed")) as ws:  # the client closes
            await ws.send("hi")
            assert await ws.recv() == "hi"
        RawClient(running.port, "/echo?k=free-dropped").close()  # gone without a close frame
        async with connect(running.url("/interleave?k=free-app")) as ws:  # the app closes
            await ws.send("2")
            assert [m async for m in ws] == ["asgi 0", "push 1"]
        with pytest.raises(InvalidStatus):  # refused before its accept
            await connect(running.url("/deny?k=free-denied"))
        await eventually(lambda: len(seen("free-dropped")) == 4 and len(seen("free-app")) == 3)
        await eventually(lambda: not state.connections and not state.tasks)
        assert live_objects(LimitedHttpProtocol, WebSocketProtocol, SansIOServer, PushChannel) == []
    finally:
        gc.enable()
        running.stop()
