"""vqueue's uvicorn WebSocket protocol: the ASGI interface plus a synchronous push path.

Run uvicorn with `ws="server.wsprotocol:WebSocketProtocol"`. uvicorn's HTTP protocol parses the
upgrade request, builds one of these with `(config=, server_state=, app_state=)`, calls
`connection_made(transport)`, replays the request head through `data_received` (vqueue's own HTTP
protocol, `server.httpprotocol`, passes the parsed request to `upgraded` instead), then hands the
transport over with `transport.set_protocol`. From there `websockets`' sans-I/O `ServerProtocol`
(see `server.wsframes`) does the framing and this class does the I/O.

Why our own: awaiting the ASGI `send` costs 2-4x a direct frame write, and a fan-out that awaits
socket after socket stalls behind the first client that stops reading (docs/architecture.md).
So the scope
carries `scope["extensions"]["vqueue.push"] == {"channel": PushChannel}`: `channel.send()`
frames and writes one message with no await and never waits for a slow client; the caller
watches `buffered_bytes()` and calls `abort()` on a client that stays stuck. ASGI `send` and
`channel.send` share one write path, so their frames reach the wire in call order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import socket
from collections import Counter
from typing import Any, ClassVar, Protocol, assert_never, cast

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, WebSocketDisconnectEvent, WebSocketScope
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected, get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response

from server.logs import REQUEST_ID_SCOPE_KEY
from server.wsframes import (
    SHORT_BINARY,
    SHORT_TEXT,
    MessageAssembler,
    SansIOServer,
    Upgrade,
    accept_response,
    frame_header,
    http_response,
    request_upgrade,
    switching_protocols,
    websocket_scope,
)

__all__ = ["PushChannel", "WebSocketProtocol"]

logger = logging.getLogger(__name__)

PUSH_EXTENSION = "vqueue.push"
INBOX_HIGH_MESSAGES = 4  # stop reading the socket while this many messages wait for the app
DEFAULT_DRAIN_TIMEOUT_S = 20.0  # when uvicorn's ws_ping_timeout is None
# The kernel's send buffer per WebSocket (Linux doubles it). Left alone it grows to megabytes
# on loopback, so a client that stops reading would swallow thousands of frames before anyone
# noticed; a watcher needs a few hundred bytes in flight. Past it, frames wait in user space,
# where the outbox (server.outbox) coalesces them and the sweeper closes what stays stuck.
SEND_BUFFER_BYTES = 16 * 1024


class Phase(enum.Enum):
    HANDSHAKE = enum.auto()  # waiting for the request, then for the app to accept or deny
    DENYING = enum.auto()  # the app is sending an HTTP response instead of accepting
    OPEN = enum.auto()
    CLOSING = enum.auto()  # a close frame or a refusal went out or came in: no more messages
    CLOSED = enum.auto()  # the transport is gone


# Enum members are slow to look up on Python 3.11 (~0.1 us each): the push path, which runs
# once per frame, compares against this module constant instead.
_OPEN = Phase.OPEN


class PushListener(Protocol):
    """Who a push channel tells whether frames may go straight to its transport (the outbox)."""

    def writable(self, transport: asyncio.Transport | None) -> None: ...


class PushChannel:
    """Writes messages to one WebSocket synchronously, for fan-out; use it on the event loop.

    `send()` never waits: a client that stops reading makes `buffered_bytes()` grow, and the
    caller decides when to `abort()` it (architecture.md inv. 5).
    """

    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocketProtocol) -> None:
        self._ws = ws

    @property
    def open(self) -> bool:
        return self._ws.phase is Phase.OPEN and not self._ws.transport.is_closing()

    def send(self, payload: bytes, text: bool) -> bool:
        """Frames `payload` (UTF-8 when `text`) and writes it; False if the socket is not open."""
        ws = self._ws
        # is_closing() covers a transport that failed a write and has yet to tell us.
        if ws.phase is not _OPEN or ws.transport.is_closing():
            return False
        ws.write_message(payload, text)
        return True

    def bind(self, listener: PushListener, text: bool, high_water_bytes: int) -> tuple[bytes, ...]:
        """From now on, tell `listener` when frames may go straight to the transport.

        `listener.writable(transport)` gets the transport while the connection is open
        and its transport holds at most `high_water_bytes` unsent (writing pauses above that
        and resumes at a quarter of it), and None otherwise; it is called once now. A payload
        of n bytes, n < len(headers), is then written as `transport.write(headers[n] +
        payload)` with the headers returned here: no call into this class per frame.
        """
        self._ws.bind_push(listener, high_water_bytes)
        return SHORT_TEXT if text else SHORT_BINARY

    @property
    def fd(self) -> int:
        """The socket's descriptor, for writes that skip the transport while it holds nothing
        unsent (`server._straight`); -1 under TLS, whose bytes only the transport may write."""
        return self._ws.fd

    def try_send(self, payload: bytes, text: bool) -> int:
        """`send()` unless the transport's writing is paused (above the high water of `bind`).

        1: written; 0: not written, the client is behind; -1: not written, the socket is not
        open. One call per frame instead of two, for frames that cannot go straight.
        """
        ws = self._ws
        transport = ws.transport
        if ws.phase is not _OPEN or transport.is_closing():
            return -1
        if ws.paused:
            return 0
        ws.write_message(payload, text)
        return 1

    def buffered_bytes(self) -> int:
        """Bytes written but still waiting in the transport for the client to read them."""
        return self._ws.buffered_bytes()

    def abort(self) -> None:
        """Drops the connection at once; the app then receives websocket.disconnect 1006."""
        self._ws.abort()


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection under uvicorn, from the upgrade request to connection_lost."""

    # Slots: ten thousand idle watchers are ten thousand of these (docs/architecture.md).
    __slots__ = (
        "_abort_timer",
        "_accepted",
        "_app_state",
        "_assembler",
        "_client",
        "_config",
        "_conn",
        "_connections",
        "_denial",
        "_disconnect",
        "_drain_timeout_s",
        "_drained",
        "_inbox",
        "_loop",
        "_path",
        "_ping_payload",
        "_ping_timeout_s",
        "_ping_timer",
        "_pong_timer",
        "_push",
        "_reading_paused",
        "_receiver",
        "_response",
        "_scope",
        "_secure",
        "_server",
        "_server_state",
        "fd",
        "phase",
        "transport",
    )

    close_timeout_s: ClassVar[float] = 10.0  # a close handshake longer than this is aborted
    # Connections this process cut for a client that stopped answering, by cause (/readyz).
    closes: ClassVar[Counter[str]] = Counter()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._loop = _loop or asyncio.get_running_loop()
        self._server_state = server_state
        # uvicorn types this set with its own protocol classes; it only calls shutdown() on them.
        self._connections = cast("set[Any]", server_state.connections)
        self._app_state = app_state
        self._conn = SansIOServer(config.ws_max_size)
        self._assembler = MessageAssembler()
        self.transport: asyncio.Transport
        self.fd = -1  # the socket under a plain TCP transport (PushChannel.fd)
        self.phase = Phase.HANDSHAKE
        self._accepted = False
        self._client: tuple[str, int] | None = None
        self._server: tuple[str, int | None] | None = None  # this end of the socket
        self._secure = False  # TLS: the scope's scheme is wss
        self._path = ""
        self._scope: dict[str, Any] | None = None  # the app may note things in it (request id)
        # The 101 until the app decides: websockets' response, or the accept key of a plain
        # upgrade (server.wsframes.plain_upgrade) whose 101 is built as bytes.
        self._response: Response | bytes | None = None
        # The status, headers and body chunks of a denial response the app is sending.
        self._denial: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        # Short (reading pauses at INBOX_HIGH_MESSAGES): a list is a tenth of an empty deque.
        self._inbox: list[ASGIReceiveEvent] = []
        self._receiver: asyncio.Future[None] | None = None
        self._disconnect: WebSocketDisconnectEvent | None = None
        self._reading_paused = False
        self._drained: asyncio.Future[None] | None = None  # exists while writing is paused
        self._ping_timeout_s = config.ws_ping_timeout
        self._drain_timeout_s = config.ws_ping_timeout or DEFAULT_DRAIN_TIMEOUT_S
        self._ping_payload: bytes | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self._push: PushListener | None = None  # told when frames may skip the push channel

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        own = cast(asyncio.Transport, transport)
        self.handed_over(own, get_remote_addr(own), get_local_addr(own), is_ssl(own))

    def handed_over(
        self,
        transport: asyncio.Transport,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        secure: bool,
    ) -> None:
        """`connection_made`, given the addresses the HTTP protocol handing the socket over has
        read already: under uvloop each read of them builds a socket object and makes a system
        call, per connection of a storm."""
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self.fd = -1 if sock is None or secure else sock.fileno()
        self._client = client
        self._server = server
        self._secure = secure
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._process()

    def upgraded(self, request: Request | Upgrade) -> None:
        """The handshake request, already parsed by the HTTP protocol that hands us over (the
        bytes it would replay through `data_received` would be parsed a second time); already
        checked too if it is a plain `Upgrade`."""
        self._conn.skip_request()
        if isinstance(request, Upgrade):
            self._response = request.accept
            self._open(request)
        else:
            self._on_request(request)
        self._flush()

    def eof_received(self) -> None:
        self._conn.receive_eof()
        self._process()  # returning None lets the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = Phase.CLOSED
        self._tell_push()
        self._push = None  # it holds its channel, which holds this protocol
        self._stop_keepalive()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._deliver_disconnect(CloseCode.ABNORMAL_CLOSURE)
        self._release_writers()  # asyncio never resumes writing on a lost transport
        self._connections.discard(self)
        self._conn.release()
        if self._accepted and self._disconnect is not None:
            code = self._disconnect["code"]
            # Runs outside the request's task: name its request id (server.requestctx) here.
            request_id = None if self._scope is None else self._scope.get(REQUEST_ID_SCOPE_KEY)
            logger.debug(
                "WebSocket %s %s closed %d",
                self._client,
                self._path,
                code,
                extra={"request_id": request_id or "-"},
            )
        self._scope = None  # its push channel holds this protocol

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()
        self._tell_push()

    def resume_writing(self) -> None:
        self._release_writers()
        self._tell_push()

    def shutdown(self) -> None:
        """Called by uvicorn on a graceful shutdown: close with 1012 (service restart)."""
        if self.phase is Phase.OPEN:
            self._conn.send_close(CloseCode.SERVICE_RESTART)
            self._begin_close(CloseCode.SERVICE_RESTART)
        elif self._response is not None:  # the app has not answered the handshake yet
            self._respond(503, CloseCode.SERVICE_RESTART)
        else:
            self._close_transport()
        self._flush()

    # The push path

    def write_message(self, payload: bytes, text: bool) -> None:
        """Frames one message and writes it, without waiting; the caller checked the phase.

        A server frame is unmasked and we never fragment, so the header is a few bytes we build
        ourselves: websockets' sans-I/O framing costs about 1 us a frame on the fan-out's path.
        Its state does not depend on outgoing data frames, and its own output is always flushed
        before control returns to the loop, so frames keep their order.
        """
        self.transport.write(frame_header(len(payload), text) + payload)

    def buffered_bytes(self) -> int:
        return 0 if self.phase is Phase.CLOSED else self.transport.get_write_buffer_size()

    @property
    def paused(self) -> bool:
        """The transport holds more than its high water unsent (see `bind_push`)."""
        return self._drained is not None

    def bind_push(self, listener: PushListener, high_water_bytes: int) -> None:
        """See `PushChannel.bind`."""
        self._push = listener
        if self.phase is not Phase.CLOSED:
            # Pauses at once if the buffer is over it already (pause_writing tells the listener).
            self.transport.set_write_buffer_limits(high=high_water_bytes)
        self._tell_push()

    def _tell_push(self) -> None:
        """Tell the push listener whether frames may go straight to the transport now: open,
        not closing, not paused. Every change of those three calls this."""
        if self._push is None:
            return
        straight = self.phase is Phase.OPEN and self._drained is None
        if straight and not self.transport.is_closing():
            self._push.writable(self.transport)
        else:
            self._push.writable(None)

    def abort(self) -> None:
        if self.phase is not Phase.CLOSED:
            self._begin_close(CloseCode.ABNORMAL_CLOSURE)
            self.transport.abort()

    # Incoming data

    def _process(self) -> None:
        for event in self._conn.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
            elif isinstance(event, Response):  # only a client receives responses
                continue
            else:
                assert_never(event)
        exc = self._conn.parser_exc
        if exc is not None:  # websockets failed the connection: 1002, 1007, 1009 or 1006 (EOF)
            sent = self._conn.close_sent
            self._begin_close(CloseCode.ABNORMAL_CLOSURE if sent is None else sent.code)
        self._flush()

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            self._on_data(frame)
        elif opcode is Opcode.CLOSE:
            close = self._conn.close_rcvd
            assert close is not None
            self._begin_close(close.code, close.reason)  # websockets has queued the echo
        elif opcode is Opcode.PONG:
            self._on_pong(bytes(frame.data))
        elif opcode is Opcode.PING:
            pass  # websockets has queued the pong
        else:
            assert_never(opcode)

    def _on_data(self, frame: Frame) -> None:
        if self._disconnect is not None:
            return  # the app has been told the connection is over
        try:
            message = self._assembler.feed(frame)
        except UnicodeDecodeError:
            self._conn.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
            self._begin_close(CloseCode.INVALID_DATA, "invalid UTF-8")
            return
        if message is not None:
            self._inbox.append(message)
            self._wake_receiver()
            if len(self._inbox) >= INBOX_HIGH_MESSAGES:
                self._pause_reading()

    def _on_request(self, request: Request) -> None:
        response = self._conn.accept(request)
        if response.status_code != 101:  # not a valid WebSocket handshake: 400, 405...
            self._conn.send_response(response)
            self._begin_close(CloseCode.ABNORMAL_CLOSURE)
            return
        self._response = response
        self._conn.forget_request()
        self._open(request_upgrade(request))

    def _open(self, upgrade: Upgrade) -> None:
        """A valid handshake: the app is called with its scope."""
        scope = websocket_scope(
            upgrade,
            config=self._config,
            scheme="wss" if self._secure else "ws",
            server=self._server,
            client=self._client,
            state=self._app_state.copy(),
            extensions={
                "websocket.http.response": {},
                PUSH_EXTENSION: {"channel": PushChannel(self)},
            },
        )
        self._path = scope["path"]
        self._scope = cast(dict[str, Any], scope)
        self._inbox.append({"type": "websocket.connect"})
        # A client must wait for our answer before sending frames (RFC 6455 4.1): read nothing
        # until the app accepts, so nothing, not even a pong, can precede the 101.
        self._pause_reading()
        task = self._loop.create_task(self._run_asgi(scope))
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    # The ASGI app

    async def _run_asgi(self, scope: WebSocketScope) -> None:
        try:
            result = await self._config.loaded_app(scope, self.receive, self.send)
        except ClientDisconnected:
            result = None
        except asyncio.CancelledError:  # uvicorn's graceful-shutdown timeout ran out
            self._end_app(CloseCode.SERVICE_RESTART)
            raise
        except Exception:
            logger.exception("Exception in ASGI application")
            self._end_app(CloseCode.INTERNAL_ERROR)
            return
        if result is not None:
            logger.error("ASGI callable should return None, but returned %r", result)
        self._end_app(CloseCode.NORMAL_CLOSURE)

    def _end_app(self, code: CloseCode) -> None:
        if self.phase is Phase.OPEN:
            self._close(code, "")
        elif self.phase is Phase.HANDSHAKE:
            if code is CloseCode.NORMAL_CLOSURE:
                logger.error("ASGI callable returned without accepting the WebSocket")
            self._respond(500, CloseCode.ABNORMAL_CLOSURE)
            self._flush()
        elif self.phase is Phase.DENYING:  # the response body never ended: cut it
            self.abort()

    async def receive(self) -> ASGIReceiveEvent:
        # One receiver at a time, as ASGI apps read: a second concurrent call would take over.
        while not self._inbox:
            if self._disconnect is not None:
                return self._disconnect  # again and again: a late receive must not hang
            self._receiver = self._loop.create_future()
            try:
                await self._receiver
            finally:
                self._receiver = None
        message = self._inbox.pop(0)
        if not self._inbox and self.phase is Phase.OPEN:
            self._resume_reading()
        return message

    async def send(self, message: ASGISendEvent) -> None:
        phase = self.phase
        if phase is Phase.OPEN:
            await self._send_open(message)
        elif phase is Phase.HANDSHAKE:
            self._send_handshake(message)
        elif phase is Phase.DENYING:
            self._send_denial(message)
        elif phase is Phase.CLOSING or phase is Phase.CLOSED:
            if message["type"] != "websocket.close":  # closing twice is harmless
                raise ClientDisconnected
        else:
            assert_never(phase)

    async def _send_open(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send":
            if self.transport.is_closing():  # failed a write and has yet to tell us
                raise ClientDisconnected
            data = message.get("bytes")
            if data is not None:
                self.write_message(data, text=False)
            else:
                text = message.get("text")
                if text is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                self.write_message(text.encode(), text=True)
            if self._drained is not None:
                await self._drain()
        elif message["type"] == "websocket.close":
            self._close(message.get("code", CloseCode.NORMAL_CLOSURE), message.get("reason") or "")
        else:
            raise RuntimeError(f"Expected 'websocket.send' or 'websocket.close', got {message!r}")

    def _send_handshake(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.accept":
            response, self._response = self._response, None
            defaults = self._server_state.default_headers
            headers, subprotocol = message.get("headers", ()), message.get("subprotocol")
            if isinstance(response, bytes):
                self._conn.switched(switching_protocols(response, defaults, headers, subprotocol))
            else:
                assert response is not None
                accept_response(response, defaults, headers, subprotocol)
                self._conn.send_response(response)
            self._flush()
            self.phase = Phase.OPEN
            self._tell_push()
            self._accepted = True
            self._start_keepalive()
            self._resume_reading()
            logger.debug("WebSocket %s %s open", self._client, self._path)
        elif message["type"] == "websocket.close":  # denied before accept: HTTP 403
            self._respond(403, CloseCode.ABNORMAL_CLOSURE)
            self._flush()
        elif message["type"] == "websocket.http.response.start":
            if not 100 <= message["status"] <= 599:
                raise RuntimeError(f"Invalid HTTP status {message['status']}")
            self._denial = (message["status"], list(message.get("headers", ())), [])
            self.phase = Phase.DENYING
        else:
            raise RuntimeError(f"Expected 'websocket.accept' or a denial, got {message!r}")

    def _send_denial(self, message: ASGISendEvent) -> None:
        if message["type"] != "websocket.http.response.body":
            raise RuntimeError(f"Expected 'websocket.http.response.body', got {message!r}")
        assert self._denial is not None
        status, headers, body = self._denial
        body.append(message.get("body", b""))
        if not message.get("more_body", False):
            self._respond(status, CloseCode.ABNORMAL_CLOSURE, headers, b"".join(body))
            self._flush()

    # Closing

    def _close(self, code: int, reason: str) -> None:
        """The app's close: a close frame, then wait (bounded) for the client's answer."""
        # A close frame holds at most 123 bytes of reason.
        reason = reason.encode()[:123].decode(errors="ignore")
        self._conn.send_close(code, reason)
        self._inbox.clear()  # the app asked to stop: what it has not read is moot
        self._begin_close(code, reason)
        self._flush()

    def _respond(
        self,
        status: int,
        code: int,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> None:
        """Refuses the handshake with an HTTP response; the app receives disconnect `code`."""
        defaults = self._server_state.default_headers
        self._response = None
        # websockets ends the stream after a response other than 101 (SEND_EOF).
        self._conn.send_response(http_response(status, defaults, headers or (), body))
        self._begin_close(code)

    def _begin_close(self, code: int, reason: str = "") -> None:
        if self.phase is Phase.CLOSING or self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSING
        self._tell_push()
        self._stop_keepalive()
        self._deliver_disconnect(code, reason)
        self._resume_reading()  # the client's close frame must get through
        self._arm_abort_timer()

    def _flush(self) -> None:
        for data in self._conn.data_to_send():
            if not data:  # SEND_EOF: websockets is done with this connection
                self._close_transport()
            elif not self.transport.is_closing():  # uvloop raises on a write after close
                self.transport.write(data)

    def _close_transport(self) -> None:
        if self.phase is not Phase.CLOSED:
            self._begin_close(CloseCode.ABNORMAL_CLOSURE)  # unless a close already began
            self.transport.close()  # flushes the buffer first: the abort timer bounds that
            self._arm_abort_timer()

    def _arm_abort_timer(self) -> None:
        # transport.close() waits for a buffer a stuck client never drains (architecture.md).
        if self._abort_timer is None:
            self._abort_timer = self._loop.call_later(self.close_timeout_s, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if self.phase is not Phase.CLOSED:
            WebSocketProtocol.closes["close_timeout"] += 1
        self.transport.abort()

    def _deliver_disconnect(self, code: int, reason: str = "") -> None:
        if self._disconnect is None:
            disconnect: WebSocketDisconnectEvent = {
                "type": "websocket.disconnect",
                "code": int(code),  # a plain int, not websockets' CloseCode enum
                "reason": reason,
            }
            self._disconnect = disconnect
            self._wake_receiver()

    # Flow control

    def _wake_receiver(self) -> None:
        if self._receiver is not None and not self._receiver.done():
            self._receiver.set_result(None)

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self.transport.is_closing():
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()

    def _release_writers(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def _drain(self) -> None:
        """Waits, after an ASGI send, until the client takes the buffer below the low mark."""
        assert self._drained is not None
        done, _ = await asyncio.wait((self._drained,), timeout=self._drain_timeout_s)
        if not done:  # a client that reads nothing for this long is as dead as a silent one
            WebSocketProtocol.closes["drain_timeout"] += 1
            self.abort()
        if self.phase is not Phase.OPEN:
            raise ClientDisconnected

    # Keepalive

    def _start_keepalive(self) -> None:
        interval = self._config.ws_ping_interval
        if interval is not None and interval > 0:
            self._ping_timer = self._loop.call_later(interval, self._send_ping)

    def _stop_keepalive(self) -> None:
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = None
        self._ping_payload = None

    def _send_ping(self) -> None:
        self._ping_timer = None
        # A random payload tells the answer to this ping from a stale or unsolicited pong.
        self._ping_payload = random.getrandbits(32).to_bytes(4, "big")
        self._conn.send_ping(self._ping_payload)
        self._flush()
        self._await_pong()

    def _await_pong(self) -> None:
        if self._ping_timeout_s is None:  # no deadline: just ping again later
            self._start_keepalive()
        else:
            self._pong_timer = self._loop.call_later(self._ping_timeout_s, self._on_pong_timeout)

    def _on_pong(self, payload: bytes) -> None:
        if self._ping_payload is None or payload != self._ping_payload:
            return
        self._ping_payload = None
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
            self._start_keepalive()

    def _on_pong_timeout(self) -> None:
        self._pong_timer = None
        if self._reading_paused:
            # The pong may sit unread behind messages the app has not taken yet: no verdict.
            self._await_pong()
            return
        WebSocketProtocol.closes["ping_timeout"] += 1
        self._conn.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._begin_close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()
