"""One Redis connection that carries every script call of this node, many in flight at once.

redis-py spends about 60 us of CPU on one EVALSHA (a pooled connection checked out and back,
a timeout context, retry and health-check wrappers, its encoder); Redis itself needs a few.
Scripts are the hot path (every join, call-next and ticket read), so the store sends them here
instead: each call is written to one shared connection and waits on a future, and replies,
which Redis sends in the order the calls arrived, are matched to the futures in that order
(about 10 us a call). Redis runs one command at a time anyway, so one connection loses nothing;
Redis reads the calls of a burst in one go.

Only scripts come here: they never block, so no call waits behind a slow one that Redis would
not have served first anyway. Blocking reads (the event streams' XREADGROUP) and everything a
cluster routes stay on redis-py. The connection speaks RESP3, as redis-py does, so a script's
reply has the same Python types either way (`tests/server/test_store_lane.py` holds them
equal). A lost connection fails the calls in flight with redis-py's `ConnectionError`, which
the store maps to Unavailable like any other; the next call connects again.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio.connection import UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError, InvalidResponse, ResponseError

CONNECT_TIMEOUT_S = 5.0
# Schemes the lane dials itself; rediss:// (TLS with its many options) stays on redis-py.
LANE_SCHEMES = ("redis://", "unix://")


def lane_supports(url: str) -> bool:
    return url.startswith(LANE_SCHEMES)


def pack(args: tuple[bytes | memoryview | str | int | float, ...]) -> bytes:
    """One command in RESP: an array of bulk strings.

    Every join packs twenty-odd arguments, nearly all `str` and `int`, so those are asked about
    first, and with plain classes: a `bytes | memoryview` union checked first made this take
    half as long again.
    """
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        elif isinstance(arg, (bytes, memoryview)):  # a tuple: checking a union is slower
            data = bytes(arg)
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis argument cannot be {type(arg).__name__}")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Wire(asyncio.Protocol):
    """The connection: replies are handed to the waiting futures in the order sent."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError, protocolError=InvalidResponse)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            # A peer that vanished without a reset is found by the kernel, not by a hang.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise InvalidResponse("a reply nobody asked for")
                future = self.waiting.popleft()
                if not future.done():  # a cancelled caller's reply is read and dropped
                    future.set_result(reply)
        except InvalidResponse as exc:
            self.drop(ConnectionError(f"Redis sent something unreadable: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.drop(ConnectionError(f"the Redis connection closed: {exc or 'EOF'}"))

    def drop(self, error: Exception) -> None:
        self.lost = self.lost or error
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            raise self.lost or ConnectionError("the Redis connection is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(command)
        return future


class ScriptLane:
    """Scripts over one multiplexed connection to the Redis at `url` (redis:// or unix://)."""

    def __init__(self, url: str) -> None:
        self._options = parse_url(url)
        self._wire: _Wire | None = None
        self._connecting: asyncio.Task[_Wire] | None = None

    async def evalsha(
        self, sha: str, source: str | bytes | memoryview, keys: list[str], args: list[str | int]
    ) -> Any:
        """The script's reply; loaded first when this Redis does not know it (a restart)."""
        command = pack(("EVALSHA", sha, len(keys), *keys, *args))
        reply = await self.call(command)
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            loaded = await self.call(pack(("SCRIPT", "LOAD", source)))
            if isinstance(loaded, ResponseError):
                raise loaded
            reply = await self.call(command)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def call(self, command: bytes) -> Any:
        """One packed command's reply (a ResponseError is returned, not raised)."""
        wire = self._wire
        if wire is None or wire.lost is not None:
            wire = await self._connected()
        return await wire.send(command)

    async def _connected(self) -> _Wire:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            # Read here too, so that a failure every caller gave up on is not logged as unread.
            self._connecting.add_done_callback(lambda t: t.cancelled() or t.exception())
        connecting = self._connecting
        try:
            # Shielded: one caller's cancellation must not fail the others' connect.
            return await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None

    async def _connect(self) -> _Wire:
        opts = self._options
        loop = asyncio.get_running_loop()
        timeout = cast(float | None, opts.get("socket_connect_timeout")) or CONNECT_TIMEOUT_S
        wire: _Wire | None = None
        try:
            async with asyncio.timeout(timeout):
                if opts.get("connection_class") is UnixDomainSocketConnection:
                    _, wire = await loop.create_unix_connection(_Wire, opts["path"])
                else:
                    host, port = opts.get("host", "localhost"), int(opts.get("port", 6379))
                    _, wire = await loop.create_connection(_Wire, host, port)
                hello: tuple[str | int, ...] = ("HELLO", 3)
                if opts.get("password") is not None:
                    hello += ("AUTH", opts.get("username") or "default", opts["password"])
                first = [wire.send(pack(hello))]
                if opts.get("db"):
                    first.append(wire.send(pack(("SELECT", int(opts["db"])))))
                for reply in await asyncio.gather(*first):
                    if isinstance(reply, ResponseError):
                        raise ConnectionError(f"Redis refused the connection: {reply}")
        except BaseException as exc:
            if wire is not None:
                wire.drop(ConnectionError("the connection was not set up"))
            if isinstance(exc, TimeoutError):
                raise ConnectionError(f"no Redis connection within {timeout} s") from exc
            if isinstance(exc, OSError):
                raise ConnectionError(f"cannot reach Redis: {exc}") from exc
            raise
        self._wire = wire
        return wire

    async def close(self) -> None:
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.drop(ConnectionError("the store was closed"))
