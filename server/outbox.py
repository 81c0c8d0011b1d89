"""Per-connection outgoing buffers: broadcast never waits on one socket (architecture.md inv. 5).

An outbox takes encoded frames without blocking. Position frames are replaceable: a newer one
overwrites an unsent older one. `called` and `status` frames are kept in order. A connection
whose backlog does not clear within `stuck_close_s` is aborted by the fan-out's sweeper.

`ChannelOutbox` writes straight into the transport through vqueue's own WebSocket protocol
(`server.wsprotocol`, scope extension "vqueue.push"); `AsgiOutbox` is the portable fallback for
other ASGI servers, with one sender task per connection. `offer_each` is the fan-out's loop: while
an outbox holds nothing and its transport keeps up, a frame costs one call into the transport.

At ten thousand watchers the objects a frame touches cost more than the bytecode it runs: each
lies apart from the last, and the kernel's own write pushed it out of the CPU's caches since the
last flush. So the straight path is the transport itself (not a bound method of it, one object
more), and `Outbox.fronted_by` copies it onto the fan-out's watcher, which the flush holds
anyway, so that `offer_each` never reads the outbox while it may skip it.

`server._straight` (server/_straight.c, built at install when a C compiler is there) is the same
loop in C, and writes a frame to the socket itself while its transport holds nothing unsent;
without it, or with VQ_PURE_PYTHON=true (`use_c_loop`), the loop below runs. The tests run both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Protocol

MAX_BACKLOG_FRAMES = 16
# Above this many bytes in the transport's buffer, frames wait in the outbox instead, where a
# newer position replaces an older one: a live watcher never has more than a frame or two out.
HIGH_WATER_BYTES = 16 * 1024


class Writer(Protocol):
    """A transport's one method that the straight path calls."""

    def write(self, data: bytes) -> object: ...


class Front(Protocol):
    """Who stands for an outbox in `offer_each`: holds a copy of its straight path."""

    direct: Writer | None
    headers: tuple[bytes, ...]
    fd: int


class PushChannel(Protocol):
    """What `server.wsprotocol` offers through the scope extension "vqueue.push"."""

    @property
    def open(self) -> bool: ...

    def send(self, payload: bytes, text: bool) -> bool: ...

    def bind(self, listener: ChannelOutbox, text: bool, high_water_bytes: int) -> tuple[bytes, ...]:
        """Call `listener.writable(transport | None)` from now on; returns the short frame
        headers."""
        ...

    @property
    def fd(self) -> int:
        """The plain TCP socket's descriptor under the transport, -1 if none may be written."""
        ...

    def buffered_bytes(self) -> int: ...

    def try_send(self, payload: bytes, text: bool) -> int: ...

    def abort(self) -> None: ...


class _Tally:
    """A process-wide count kept on an instance: bumping a class attribute on every frame would
    change the class, and so throw away the interpreter's attribute caches for every outbox."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


SENT = _Tally()  # frames written by every outbox of this process (/readyz, /metrics)


class Outbox:
    __slots__ = (
        "_backlog",
        "_front",
        "_on_backlog",
        "closed",
        "direct",
        "fd",
        "headers",
        "stuck_since",
        "text",
    )

    # Connections aborted by this process's outboxes, by cause (/readyz): "stuck_outbox" (the
    # sweeper: a backlog that did not clear in time), "backlog_overflow" (too many frames kept).
    closes: ClassVar[Counter[str]] = Counter()

    def __init__(self, text: bool, on_backlog: Callable[[Outbox], None]) -> None:
        self.text = text
        self.closed = False
        self.stuck_since: float | None = None
        self._backlog: deque[tuple[bytes, bool]] | None = None  # made when a frame must wait
        self._on_backlog = on_backlog
        # Set while a frame may skip this object: the transport, for a payload of n bytes,
        # n < len(headers), as `direct.write(headers[n] + payload)` (see offer_each).
        self.direct: Writer | None = None
        self.headers: tuple[bytes, ...] = ()
        # The socket under `direct`, which `server._straight` writes to while the transport
        # holds nothing unsent (-1: none; TLS, or not a socket).
        self.fd = -1
        self._front: Front | None = None

    def fronted_by(self, front: Front | None) -> None:
        """Keep `front.direct`, `front.headers` and `front.fd` equal to this outbox's from now
        on (None: no longer; the front refers to this outbox, so the two are a cycle until then).
        A front let go keeps no straight path: whatever still offers through it takes the long
        way."""
        if self._front is not None and front is not self._front:
            self._front.direct = None
        self._front = front
        if front is not None:
            front.headers = self.headers
            front.fd = self.fd
            front.direct = self.direct

    def _set_direct(self, direct: Writer | None) -> None:
        self.direct = direct
        if self._front is not None:
            self._front.direct = direct

    def offer(self, frame: bytes, replaceable: bool) -> None:
        if self.closed:
            return
        if not self._backlog and self._try_write(frame):
            return
        self._hold(frame, replaceable)

    def _hold(self, frame: bytes, replaceable: bool) -> None:
        """Keep a frame the socket would not take now; the sweeper retries it."""
        if self.closed:
            return
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
            self._set_direct(None)  # frames keep their order: the next ones wait behind this one
        if replaceable and backlog and backlog[-1][1]:
            backlog[-1] = (frame, True)
        else:
            backlog.append((frame, replaceable))
        if len(backlog) > MAX_BACKLOG_FRAMES:
            self.abort("backlog_overflow")
            return
        if self.stuck_since is None:
            self.stuck_since = time.monotonic()
            self._on_backlog(self)

    def retry(self) -> bool:
        """Write what the socket now takes; True when the backlog is empty."""
        backlog = self._backlog
        while backlog and not self.closed:
            if not self._try_write(backlog[0][0]):
                return False
            backlog.popleft()
        self._backlog = None  # an idle connection keeps no deque (about 600 bytes each)
        self.stuck_since = None
        self._cleared()
        return True

    def _cleared(self) -> None:
        """The backlog is empty again."""

    @property
    def pending(self) -> int:
        return len(self._backlog or ())

    def _busy(self) -> bool:
        return bool(self._backlog)

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait (briefly) until everything offered is written: used before a normal close."""
        deadline = time.monotonic() + timeout_s
        while self._busy() and not self.closed and time.monotonic() < deadline:
            self.retry()
            if self._busy():
                await asyncio.sleep(0.01)

    def _try_write(self, frame: bytes) -> bool:
        raise NotImplementedError

    def abort(self, cause: str) -> None:
        """Drop the connection now, counting why."""
        if not self.closed:
            Outbox.closes[cause] += 1
        self._drop()

    def _drop(self) -> None:
        raise NotImplementedError


class ChannelOutbox(Outbox):
    __slots__ = ("_write", "channel")

    def __init__(
        self, channel: PushChannel, text: bool, on_backlog: Callable[[Outbox], None]
    ) -> None:
        super().__init__(text, on_backlog)
        self.channel = channel
        self._write: Writer | None = None  # what the channel last allowed
        self.fd = channel.fd
        self.headers = channel.bind(self, text, HIGH_WATER_BYTES)

    def writable(self, transport: Writer | None) -> None:
        """The channel's word: frames may go straight to `transport` (None: they may not)."""
        self._write = transport
        self._set_direct(None if self._backlog or self.closed else transport)

    def _cleared(self) -> None:
        self._set_direct(None if self.closed else self._write)

    def _try_write(self, frame: bytes) -> bool:
        sent = self.channel.try_send(frame, self.text)
        if sent > 0:
            SENT.value += 1
        elif sent < 0:
            self._close()  # the frame is dropped with the connection: not counted as sent
        return sent != 0

    def _close(self) -> None:
        self.closed = True
        self._write = None
        self._set_direct(None)

    def _drop(self) -> None:
        self._close()
        self._backlog = None
        self.channel.abort()


class Addressee(Front, Protocol):
    """Whoever frames are for: a fan-out watcher, which fronts its outbox."""

    @property
    def outbox(self) -> Outbox: ...


def offer_each(to: Sequence[Addressee], frames: Sequence[bytes], replaceable: bool) -> None:
    """`to[i].outbox.offer(frames[i], replaceable)` for each i, as one loop.

    A frame goes straight to the transport when its outbox allows (`Outbox.direct`, copied on
    its front): open, no backlog, the client keeping up. That is one C call per frame where
    `offer` makes three Python calls and two more into the transport: at ten thousand watchers
    a flush is mostly this loop (BENCHMARKS.md, Profile). `server._straight` runs it in C.
    """
    if _native_offer_each is not None:
        SENT.value += _native_offer_each(to, frames, replaceable)
        return
    offered = 0  # frames that took the long way, which counts its own
    for addressee, frame in zip(to, frames, strict=True):
        transport = addressee.direct
        if transport is not None:
            headers = addressee.headers
            size = len(frame)
            if size < len(headers):
                transport.write(headers[size] + frame)
                continue
        addressee.outbox.offer(frame, replaceable)
        offered += 1
    SENT.value += len(to) - offered


def _built() -> Callable[[Sequence[Addressee], Sequence[bytes], bool], int] | None:
    """`server._straight.offer_each`, if it was built."""
    try:
        from server._straight import offer_each as native
    except ImportError:  # no C compiler at install: the loop in Python does the same
        return None
    return native


_BUILT = _built()
_native_offer_each = _BUILT  # the loop `offer_each` runs in C, or None: the one in Python


def use_c_loop(wanted: bool) -> None:
    """Run `offer_each` in C from now on if it was built and `wanted` (the app passes
    `not Settings.pure_python`, VQ_PURE_PYTHON); else in Python."""
    global _native_offer_each  # noqa: PLW0603 (one process-wide choice, made at start-up)
    _native_offer_each = _BUILT if wanted else None


def runs_c_loop() -> bool:
    """Whether `offer_each` runs in C (`/readyz` says so, as `fanout_loop`)."""
    return _native_offer_each is not None


class AsgiOutbox(Outbox):
    """Fallback: one task per connection awaits the ASGI send, so only it waits on its socket."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        text: bool,
        on_backlog: Callable[[Outbox], None],
    ) -> None:
        super().__init__(text, on_backlog)
        self._send = send
        self._wake = asyncio.Event()
        self._queue: deque[bytes] = deque()
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._busy_since: float | None = None

    def _try_write(self, frame: bytes) -> bool:
        if self._queue:
            return False
        self._queue.append(frame)
        self._wake.set()
        return True

    async def _run(self) -> None:
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                frame = self._queue.popleft()
                self._busy_since = time.monotonic()
                event: dict[str, Any] = {"type": "websocket.send"}
                event["text" if self.text else "bytes"] = frame.decode() if self.text else frame
                try:
                    await self._send(event)
                except (OSError, RuntimeError):
                    self.closed = True
                    return
                SENT.value += 1
                self._busy_since = None
                if not self._queue and self._backlog:
                    self.retry()

    def _busy(self) -> bool:
        return bool(self._backlog or self._queue or self._busy_since is not None)

    def _drop(self) -> None:
        self.closed = True
        self._backlog = None
        self._task.cancel()

    async def aclose(self) -> None:
        self.closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
