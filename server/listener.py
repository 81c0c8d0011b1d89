"""The node's event loop: uvloop, with listening sockets that accept every waiting connection.

libuv (1.52, under uvloop 0.23) accepts one connection each time a listening socket is ready,
that is once per turn of the event loop. In a reconnect storm each turn also runs the work of the
sockets already accepted (their handshakes, watches, ticket reads, the flushes of the line's
changes), so a node busy with 5,000 returning watchers accepted 900 a second while thousands
waited in the kernel's queue, and each of them then went through the watch on its own (a ticket
read of one, instead of one read for hundreds). asyncio's own loop drains the queue each time
instead; so does `AcceptingServer` here, up to the listen backlog per turn, and hands each socket
to uvloop (`connect_accepted_socket`) with the protocol uvicorn asked for. Measured in
BENCHMARKS.md ("Profile"): the runs that trickled (1.6-1.7x the bare server) are gone; the
median storm did not move.

`new_event_loop` is what `vqueue serve` gives uvicorn as its loop factory. Only plain TCP
listeners are served this way; TLS and Unix sockets go to uvloop's own server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import uvloop

log = logging.getLogger(__name__)

# accept() errors that end one connection, not the listener (asyncio ignores the same).
LOST_BEFORE_ACCEPT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
RETRY_AFTER_S = 1.0  # out of descriptors or memory: stop accepting this long (asyncio's delay)

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class AcceptingServer(asyncio.AbstractServer):
    """Serves listening sockets: each time one is ready, accepts up to `per_turn` connections
    and gives each to the loop as an accepted socket."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: ProtocolFactory,
        listeners: Iterable[socket.socket],
        per_turn: int,
    ) -> None:
        self._loop = loop
        self._factory = protocol_factory
        self._listeners = list(listeners)
        self._per_turn = max(1, per_turn)
        self._serving = False
        self._closed = loop.create_future()
        self._opening: set[asyncio.Task[Any]] = set()  # connections being handed to uvloop
        self.accepted = 0  # connections accepted, for tests

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._listeners)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving or self._closed.done():
            return
        self._serving = True
        for listener in self._listeners:
            listener.setblocking(False)
            self._watch(listener)

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.shield(self._closed)

    def close(self) -> None:
        if self._closed.done():
            return
        self._serving = False
        for listener in self._listeners:
            if listener.fileno() >= 0:
                self._loop.remove_reader(listener.fileno())
                listener.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
        if self._opening:  # a hand-over started before the close still ends, one way or another
            await asyncio.gather(*self._opening, return_exceptions=True)

    def _watch(self, listener: socket.socket) -> None:
        self._loop.add_reader(listener.fileno(), self._accept_waiting, listener)

    def _accept_waiting(self, listener: socket.socket) -> None:
        for _ in range(self._per_turn):
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty
            except OSError as exc:
                if exc.errno in LOST_BEFORE_ACCEPT:
                    continue
                # EMFILE, ENFILE, ENOBUFS, ENOMEM: the waiting connections stay queued in the
                # kernel, and we try again shortly (spinning on a ready socket would not help).
                log.warning("accept() failed (%s); accepting again in %.1f s", exc, RETRY_AFTER_S)
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(RETRY_AFTER_S, self._resume, listener)
                return
            self.accepted += 1
            self._hand_over(conn)

    def _resume(self, listener: socket.socket) -> None:
        if self._serving and listener.fileno() >= 0:
            self._watch(listener)

    def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        loop = self._loop
        try:
            opening = loop.create_task(loop.connect_accepted_socket(self._factory, conn))
        except BaseException:
            conn.close()
            raise
        self._opening.add(opening)
        opening.add_done_callback(self._opened)

    def _opened(self, opening: asyncio.Task[Any]) -> None:
        self._opening.discard(opening)
        if not opening.cancelled() and opening.exception() is not None:
            # The transport closed the socket; the client sees its connection end.
            log.warning("a connection could not be opened: %r", opening.exception())


def listening_sockets(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    """Bound and listening, one per address `host` resolves to, as asyncio's create_server
    makes them (SO_REUSEADDR; IPv6 sockets IPv6-only)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            listener = socket.socket(family, kind, proto)
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(backlog)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


class Loop(uvloop.Loop):
    """uvloop, whose plain TCP servers accept every waiting connection each turn."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: ProtocolFactory,
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        start_serving: bool = True,
        **options: Any,
    ) -> asyncio.AbstractServer:
        tcp = sock is None or sock.family in (socket.AF_INET, socket.AF_INET6)
        if ssl is not None or options or not tcp or (sock is None and port is None):
            uvloop_own: Any = super()  # its overloads split host/port from sock
            server: asyncio.AbstractServer = await uvloop_own.create_server(
                protocol_factory,
                host,
                port,
                sock=sock,
                backlog=backlog,
                ssl=ssl,
                start_serving=start_serving,
                **options,
            )
            return server
        if sock is None:
            assert port is not None
            listeners = listening_sockets(host, port, backlog)
        else:
            sock.listen(backlog)
            listeners = [sock]
        accepting = AcceptingServer(self, protocol_factory, listeners, per_turn=backlog)
        if start_serving:
            await accepting.start_serving()
        return accepting


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop factory `vqueue serve` gives uvicorn."""
    return Loop()
