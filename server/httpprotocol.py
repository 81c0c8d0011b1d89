"""uvicorn's httptools protocol with the limits it lacks: a head size cap and a slow-request timer.

- A request line plus headers over `MAX_HEAD_BYTES` (16 KiB) gets 431 and the connection closes.
- A request whose head and body have not fully arrived `request_timeout_s` after its first byte
  gets 408 (or, if an answer has started, just the close): a client that trickles bytes cannot
  hold a connection and a handler for ever. uvicorn has no such timer.
- A new connection that sends nothing is closed after the keep-alive timeout, like an idle
  kept-alive one (uvicorn arms that timer only after a first response).
WebSocket upgrades are handed over with the timer stopped; to vqueue's WebSocket protocol as
the request already parsed and, if plain, already checked (`server.wsframes.plain_upgrade`,
else `handshake_request`), unless it is one websockets' parser should see for itself.

Upgrades take turns: at most `UPGRADES_PER_TURN` are handed over per turn of the event loop, the
rest wait in order with their sockets paused. In a reconnect storm every returning watcher's
request is readable at once, and handing them all over in one turn kept the loop in that turn
for two seconds at 8,000 (the handshakes, then all the watches together in the next turn), so
that a staff call, and the flush to the watchers still connected, waited behind the storm.
While any HTTP request is being answered the batch is `UPGRADES_PER_TURN_BUSY`: each of a
call-next's steps (its handler, its script's reply, its answer) waits for one turn, so the turns
are kept short until it is answered.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.http11 import Request

from server.wsframes import Upgrade, handshake_request, plain_upgrade
from server.wsprotocol import WebSocketProtocol

MAX_HEAD_BYTES = 16 * 1024
# About 5 ms of handshakes (150 us each); each one's watch then comes in a later turn. A call
# made in a storm waits for a turn after it is answered (its notice, its flush): 64 a turn made
# those waits long enough to show (BENCHMARKS.md, Profile, "Thirty-two upgrades a turn").
UPGRADES_PER_TURN = 32
# While an HTTP request is being answered (a staff call, a join): its steps go first.
UPGRADES_PER_TURN_BUSY = 8
REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that is over the limit."""


class Upgrades:
    """One loop's WebSocket upgrades waiting to be handed over, a batch each turn, in order.

    It keeps no reference to its loop (the loop is its key in `_UPGRADES`, weakly held): it
    schedules itself on the running one, which is the one its upgrades arrive on.
    """

    def __init__(self, per_turn: int, per_turn_busy: int) -> None:
        self._per_turn = per_turn
        self._per_turn_busy = per_turn_busy
        self._waiting: deque[LimitedHttpProtocol] = deque()
        self._scheduled = False
        self.requests = 0  # HTTP requests this loop is answering

    def add(self, protocol: LimitedHttpProtocol) -> None:
        self._waiting.append(protocol)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._hand_over_some)

    def _hand_over_some(self) -> None:
        waiting = self._waiting
        self._scheduled = False
        per_turn = self._per_turn_busy if self.requests else self._per_turn
        for _ in range(min(per_turn, len(waiting))):
            waiting.popleft().upgrade_now()
        if waiting:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._hand_over_some)


_UPGRADES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Upgrades] = (
    weakref.WeakKeyDictionary()
)


def upgrades_of(loop: asyncio.AbstractEventLoop) -> Upgrades:
    upgrades = _UPGRADES.get(loop)
    if upgrades is None:
        upgrades = _UPGRADES[loop] = Upgrades(UPGRADES_PER_TURN, UPGRADES_PER_TURN_BUSY)
    return upgrades


class LimitedHttpProtocol(HttpToolsProtocol):
    request_timeout_s = 30.0  # set per server by `protocol_class`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._request_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._upgrades = upgrades_of(self.loop)  # looked up once, not at every request
        self._answering = 0  # requests of this connection counted in `self._upgrades.requests`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._answered(self._answering)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._stop_timer()
        self._request_timer = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not cycle:  # a request to answer, not an upgrade
            self._answering += 1
            self._upgrades.requests += 1

    def on_response_complete(self) -> None:
        self._answered(1)
        super().on_response_complete()

    def _answered(self, count: int) -> None:
        count = min(count, self._answering)
        if count:
            self._answering -= count
            self._upgrades.requests -= count

    def on_message_complete(self) -> None:
        self._stop_timer()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_timer()
        self.transport.pause_reading()  # the client waits for its 101: nothing to read before
        self._upgrades.add(self)

    def upgrade_now(self) -> None:
        """This connection's turn (`Upgrades`): hand it over, unless it closed meanwhile."""
        if not self.transport.is_closing() and not self._hand_over_parsed():
            super().handle_websocket_upgrade()  # replays the head as bytes to be parsed
            if not isinstance(self.transport.get_protocol(), WebSocketProtocol):
                self.transport.resume_reading()  # vqueue's resumes once the app accepts
        # What uvicorn's connection_lost does, which a protocol handed over never gets: the
        # parser's callbacks hold this protocol, a cycle only the cyclic collector would free.
        self.parser = None  # type: ignore[assignment]
        self._answered(self._answering)  # a request pipelined before the upgrade, unanswered

    def _hand_over_parsed(self) -> bool:
        """Hands the connection to vqueue's WebSocket protocol with the request as parsed;
        False if that protocol is not the one configured or websockets should parse it."""
        ws_class = self.ws_protocol_class
        if not (isinstance(ws_class, type) and issubclass(ws_class, WebSocketProtocol)):
            return False
        method, headers = self.scope["method"], self.scope["headers"]
        request: Upgrade | Request | None = plain_upgrade(
            method, self.scope["http_version"], self.url, headers
        )
        if request is None:  # not a plain valid upgrade: websockets' checks and answers
            request = handshake_request(method, self.url, headers)
        if request is None:
            return False
        self._hand_over(ws_class, request)
        return True

    def _hand_over(self, ws_class: type[WebSocketProtocol], request: Request | Upgrade) -> None:
        """What uvicorn's hand-over does, with the request as parsed instead of as bytes."""
        self.connections.discard(self)
        protocol = ws_class(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.handed_over(self.transport, self.client, self.server, self.scheme == "https")
        protocol.upgraded(request)
        self.transport.set_protocol(protocol)

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal of ours already answered and closed
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(431, b"request headers over 16 KiB")
            raise HeadTooLarge

    def _too_slow(self) -> None:
        self._request_timer = None
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408, b"the request did not arrive in time")

    def _refuse(self, status: int, message: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        body = b'{"error":{"code":"%s","message":"%s"}}' % (
            b"headers_too_large" if status == 431 else b"request_timeout",
            message,
        )
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, REASONS[status])
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        self.transport.write(head + body)
        self.transport.close()

    def _stop_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None


def protocol_class(request_timeout_s: float) -> type[LimitedHttpProtocol]:
    """The protocol class for one server, with its timeout."""
    return type("HttpProtocol", (LimitedHttpProtocol,), {"request_timeout_s": request_timeout_s})
