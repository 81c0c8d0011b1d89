"""One simulated customer: a ticket, and the WebSocket that watches it.

Every frame is decoded with `protocol`'s own parser and counted once, on arrival; position frames
keep (seq, arrival time) for the latency analysis. A connection the server drops is resumed with
jittered exponential backoff (docs/architecture.md), as a well-behaved app would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.wsclient import OP_TEXT, HandshakeError, WsClient, open_ws
from protocol.codec import Codec
from protocol.errors import ProtocolError
from protocol.messages import Called, Error, Position, Status, Watch, server_message

BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 5.0
MAX_ATTEMPTS = 12


@dataclass
class Fleet:
    """What a worker process's customers share."""

    ws_url: str
    codec: Codec
    local_addr: str | None
    text: bool = True  # the codec's frames are text (read per frame: a plain attribute)
    errors: Counter[str] = field(default_factory=Counter)
    frames: Counter[str] = field(default_factory=Counter)  # by message type, but positions
    # Position frames, counted apart: a plain int costs a frame less than a Counter's key.
    positions: int = 0
    reconnect_s: list[float] = field(default_factory=list)
    # per reconnect: from the drop until its new socket had TCP connected (see WsClient)
    reconnect_connect_s: list[float] = field(default_factory=list)
    connected: int = 0
    stopping: bool = False
    rng: random.Random = field(default_factory=random.Random)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a socket opened or closed
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    resume_ws_urls: tuple[str, ...] = ()  # failover: reconnect to one of these, at random
    expect_drops: bool = False  # failover: a node is being killed; drops are not errors
    node_killed: bool = False  # failover: new sockets go to the surviving nodes too
    expected_drops: int = 0

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until `done()` holds, re-checking whenever a socket opens or closes."""
        deadline = time.monotonic() + timeout_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
        return True

    def __post_init__(self) -> None:
        self.text = self.codec.is_text

    def frame_counts(self) -> dict[str, int]:
        """Frames received, by message type."""
        counts = dict(self.frames)
        if self.positions:
            counts["position"] = self.positions
        return counts

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self.rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


class Customer:
    def __init__(self, fleet: Fleet, ticket_id: str, token: str, slow: bool = False) -> None:
        self.fleet = fleet
        self.ticket_id = ticket_id
        self.token = token
        self.slow = slow  # stops reading after its first frame (the slow-readers scenario)
        self.ws: WsClient | None = None
        self.seqs: array[int] = array("q")  # position frames: seq and arrival (time.time())
        self.times: array[float] = array("d")
        self.first_seq: int | None = None
        self.end_seq: int | None = None  # seq of its `called` or final `status` frame
        self.called_seq: int | None = None
        # The last message that told where the ticket stands: its type (or final status) and
        # place. Two fields, not a tuple: a tuple a frame is an allocation a frame.
        self.last_kind = "none"
        self.last_place: int | None = None
        self.last_seq = -1
        self.frames = 0
        self.finished = False  # a final status arrived: the server closes, no reconnect
        self.dropped_at: float | None = None  # set while a reconnect is under way
        self.drops = 0  # connections lost, not closed by the server for a finished ticket
        self.kept = False  # its socket stayed up through a reconnect storm (`--storm-keep`)
        self._reconnecting = False

    async def connect(self, url: str | None = None) -> None:
        """Open a socket and send `watch`; raises on failure (the caller counts it)."""
        fleet = self.fleet
        subprotocol = fleet.codec.value
        if url is None and fleet.node_killed:
            url = fleet.rng.choice(fleet.resume_ws_urls)
        self.ws = await open_ws(
            url or fleet.ws_url, subprotocol, self._on_message, self._on_closed, fleet.local_addr
        )
        if self.dropped_at is not None and self.ws.connected_at is not None:
            fleet.reconnect_connect_s.append(self.ws.connected_at - self.dropped_at)
        fleet.connected += 1
        self.ws.send(fleet.codec.encode(Watch(self.token)), text=fleet.codec.is_text)

    def leave(self) -> None:
        if self.ws is not None:
            self.ws.send(self.fleet.codec.dumps({"type": "leave"}), text=self.fleet.codec.is_text)

    def drop(self, now: float) -> None:
        """Cut the socket as a network failure would (the reconnect-storm scenario)."""
        if self.ws is not None and not self.finished:
            self.dropped_at = now
            self._reconnecting = True
            self.ws.abort()

    # frames

    def _on_message(self, opcode: int, payload: bytes, now: float) -> None:
        fleet = self.fleet
        try:
            if fleet.text != (opcode == OP_TEXT):
                raise ProtocolError("frame type does not match the subprotocol")
            data = orjson.loads(payload) if fleet.text else fleet.codec.loads(payload)
            position = position_fields(data)  # the hot path: no message object per frame
            message = None if position is not None else server_message(data)
        except (ProtocolError, orjson.JSONDecodeError):
            fleet.errors["bad_frame"] += 1
            return
        self.frames += 1
        if position is not None:
            tid, seq, place = position
            if (
                seq >= self.last_seq
                and tid == self.ticket_id
                and self.first_seq is not None
                and self.dropped_at is None
            ):
                self.last_seq = seq  # almost every frame: nothing for `_accept` to note
            elif not self._accept(tid, seq, now):
                return
            fleet.positions += 1
            self.seqs.append(seq)
            self.times.append(now)
            self.last_kind, self.last_place = "position", place
        elif isinstance(message, Error):
            fleet.frames["error"] += 1
            fleet.errors[f"server_error_{message.code}"] += 1
        elif isinstance(message, Position | Called | Status):
            if self._accept(message.ticket_id, message.seq, now):
                self._record(message, now)
        elif message is not None:  # the queue's state, and messages no customer gets
            fleet.frames[message.to_wire()["type"]] += 1

    def _accept(self, ticket_id: str, seq: int, now: float) -> bool:
        """Check a frame is this ticket's; seq never goes back; note first frames."""
        if ticket_id != self.ticket_id:
            self.fleet.errors["frame_for_another_ticket"] += 1
            return False
        self._sequence(seq, now)
        return True

    def _sequence(self, seq: int, now: float) -> None:
        """Seq never goes back; the first frame, and the first after a drop, are milestones."""
        fleet = self.fleet
        if seq < self.last_seq:
            fleet.errors["seq_regression"] += 1
        self.last_seq = seq
        if self.first_seq is None:
            self.first_seq = seq
            fleet.changed.set()
            if self.slow and self.ws is not None and self.ws.transport is not None:
                self.ws.transport.pause_reading()
        if self.dropped_at is not None:
            fleet.reconnect_s.append(now - self.dropped_at)
            self.dropped_at = None
            fleet.changed.set()

    def _record(self, message: Position | Called | Status, now: float) -> None:
        if isinstance(message, Position):  # a position that took the slow path: never, today
            self.fleet.positions += 1
            self.seqs.append(message.seq)
            self.times.append(now)
            self.last_kind, self.last_place = "position", message.position
        elif isinstance(message, Called):
            self.fleet.frames["called"] += 1
            # A `called` again (its state after a reconnect, a recall) is not the call's seq.
            self.called_seq = message.seq if self.called_seq is None else self.called_seq
            self.end_seq = message.seq if self.end_seq is None else self.end_seq
            self.last_kind, self.last_place = "called", None
        else:
            self.fleet.frames["status"] += 1
            self.end_seq = message.seq if self.end_seq is None else self.end_seq
            self.last_kind, self.last_place = message.status, None
            self.finished = True

    def _on_closed(self, code: int) -> None:
        fleet = self.fleet
        was_open = self.ws is not None and self.ws.opened.done() and not self.ws.opened.exception()
        self.ws = None
        fleet.changed.set()
        if was_open:
            fleet.connected -= 1
        if self.finished or fleet.stopping or not was_open:
            return
        if self.slow:
            fleet.errors["slow_reader_closed_by_server"] += 1
            return
        if not self._reconnecting:
            self.drops += 1
            if fleet.expect_drops:
                fleet.expected_drops += 1
            else:
                fleet.errors[f"ws_closed_{code}"] += 1
            self.dropped_at = time.time()
            self._reconnecting = True
        fleet.spawn(self.resume())

    async def resume(self) -> None:
        """Reconnect with jittered exponential backoff until it works: at once to the same
        node, or, when surviving nodes are given (failover), to one of them at random after a
        first jittered wait, so that thousands dropped together do not return together."""
        fleet = self.fleet
        for attempt in range(MAX_ATTEMPTS):
            if fleet.stopping or self.finished:
                break
            if attempt or fleet.resume_ws_urls:
                await asyncio.sleep(fleet.backoff_s(attempt))
            url = fleet.rng.choice(fleet.resume_ws_urls) if fleet.resume_ws_urls else None
            try:
                await self.connect(url)
                break
            except (OSError, TimeoutError, HandshakeError) as exc:
                fleet.errors[f"reconnect_failed_{_kind(exc)}"] += 1
        else:
            fleet.errors["reconnect_gave_up"] += 1
        self._reconnecting = False


def position_fields(data: object) -> tuple[str, int, int] | None:
    """(ticket_id, seq, position) of a well-formed position message, else None.

    The same checks as `protocol.messages.server_message` for this one type, without building
    a `Position` per frame; anything else goes through `server_message` itself.
    """
    if type(data) is not dict or data.get("type") != "position":
        return None
    tid, seq, position = data.get("ticket_id"), data.get("seq"), data.get("position")
    eta = data.get("eta_s", 0)
    if (
        type(tid) is str
        and type(seq) is int
        and type(position) is int
        and type(data.get("waiting")) is int
        and (eta is None or type(eta) is int)
    ):
        return tid, seq, position
    return None


def _kind(exc: BaseException) -> str:
    if isinstance(exc, HandshakeError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    return type(exc).__name__.lower()
