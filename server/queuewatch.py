"""One queue as one node sees it: its line mirror, its local watchers, and what each event
sends to whom. No Redis and no sockets here: the fan-out feeds it notices and snapshots and it
writes frames into the watchers' outboxes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.codec import Codec, position_json
from protocol.connection import Connection
from protocol.eta import EtaEstimator, eta_for
from protocol.flush import FlushPolicy
from protocol.line import EventKind, LineMirror, Notice, Outcome, Snapshot
from protocol.messages import Called, Position, ServerMessage, Status
from protocol.names import ticket_id
from server.outbox import Outbox
from server.store import TicketView

FINAL_STATUSES = ("served", "no_show", "left")


@dataclass(eq=False)
class Watcher:
    """One WebSocket connection watching one ticket."""

    queue: str
    number: int
    conn: Connection
    outbox: Outbox
    end: Callable[[], None]  # close the connection normally once its ticket is finished

    def send(self, message: ServerMessage, frame_cache: dict[object, bytes] | None = None) -> None:
        """Encode (once per codec when a cache is shared) and hand to the outbox; never waits."""
        if not self.conn.outgoing(message):
            return
        codec = self.conn.codec
        frame = None if frame_cache is None else frame_cache.get(codec)
        if frame is None:
            frame = codec.encode(message)
            if frame_cache is not None:
                frame_cache[codec] = frame
        self.outbox.offer(frame, replaceable=isinstance(message, Position))


@dataclass(eq=False)
class QueueWatch:
    name: str
    flush: FlushPolicy
    mirror: LineMirror | None = None
    watchers: dict[int, set[Watcher]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    eta: EtaEstimator = field(default_factory=EtaEstimator)
    flush_handle: asyncio.Handle | None = None
    pending: list[Notice] = field(default_factory=list)  # arrived while resyncing
    resyncing: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    drift_seq: int | None = None
    idle_since: float | None = None
    quote: Callable[[str, int, int, int], None] | None = None  # records each quoted ETA
    quoted: set[int] = field(default_factory=set)  # tickets whose first ETA went to `quote`

    # -- watchers -------------------------------------------------------------------------------

    def add(self, watcher: Watcher) -> None:
        self.idle_since = None
        self.watchers.setdefault(watcher.number, set()).add(watcher)

    def remove(self, watcher: Watcher) -> None:
        group = self.watchers.get(watcher.number)
        if group is not None:
            group.discard(watcher)
            if not group:
                del self.watchers[watcher.number]
                self.quoted.discard(watcher.number)
                self.dirty.discard(watcher.number)
                if self.mirror is not None:
                    self.mirror.unwatch(watcher.number)
        if not self.watchers:
            self.idle_since = time.monotonic()

    def send_state(self, watcher: Watcher, view: TicketView) -> None:
        """The ticket's whole current state, as at (re)connect (DESIGN.md invariant 4)."""
        tid = ticket_id(self.name, view.number)
        if view.status == "waiting" and view.position is not None:
            if self.mirror is not None:
                self.mirror.watch(view.number)
            eta = self.eta_s(view.position, view.queue_state)
            if eta is not None and view.number not in self.quoted:
                self._quote(view.number, view.position, eta)
            watcher.send(Position(tid, view.position, view.waiting, eta, view.seq))
        elif view.status == "called":
            watcher.send(Called(tid, view.counter, view.seq))
        elif view.status in FINAL_STATUSES:
            watcher.send(Status(tid, view.status, view.seq))
            watcher.end()

    def eta_s(self, position: int, state: str) -> int | None:
        return self.eta.estimate_s(position, time.time()) if state == "open" else None

    # -- events ---------------------------------------------------------------------------------

    def apply(self, notice: Notice) -> Outcome:
        """Apply one notice: mark moved watchers dirty, tell called/finished ones at once."""
        assert self.mirror is not None
        outcome, moved = self.mirror.apply(notice)
        if outcome is not Outcome.APPLIED:
            return outcome
        self.dirty.update(moved)
        if notice.kind is EventKind.CALLED:
            self.eta.record_call(notice.at_ms / 1000.0)
        if notice.number is None:  # paused, resumed, closed, opened: every ETA changes
            self.dirty.update(self.watchers)
        elif notice.kind is not EventKind.JOINED:
            self._ticket_event(notice, notice.number)
        return outcome

    def _ticket_event(self, notice: Notice, number: int) -> None:
        group = self.watchers.get(number)
        if not group:
            return
        assert self.mirror is not None
        self.mirror.unwatch(number)
        self.dirty.discard(number)
        tid = ticket_id(self.name, number)
        message: ServerMessage
        if notice.kind is EventKind.CALLED:  # never coalesced: sent now, to every connection
            message = Called(tid, notice.counter, notice.seq)
        else:
            message = Status(tid, notice.kind.value, notice.seq)
        cache: dict[object, bytes] = {}
        for watcher in list(group):
            watcher.send(message, cache)
            if notice.kind is not EventKind.CALLED:
                watcher.end()

    def flush_positions(self) -> None:
        """Send every dirty watcher its current position (one encode per ticket and codec)."""
        self.flush_handle = None
        self.flush.flushed(time.monotonic())
        mirror = self.mirror
        if mirror is None:
            return
        dirty, self.dirty = self.dirty, set()
        # One ETA interval per flush, applied to every position.
        interval = self.eta.current_interval_s(time.time()) if mirror.state == "open" else None
        waiting, seq = mirror.waiting, mirror.seq
        quoted = self.quoted
        for number in dirty:
            group = self.watchers.get(number)
            position = mirror.position(number)
            if not group or position is None:
                continue
            eta = eta_for(position, interval)
            if eta is not None and number not in quoted:
                self._quote(number, position, eta)
            tid = f"{self.name}.{number}"
            json_frame: bytes | None = None
            for watcher in group:
                conn = watcher.conn
                if not conn.allow_position(position, waiting, eta, seq):
                    continue
                if conn.codec is Codec.JSON:  # encoded once per ticket, from a template
                    if json_frame is None:
                        json_frame = position_json(tid, position, waiting, eta, seq)
                    frame = json_frame
                else:
                    frame = conn.codec.encode(Position(tid, position, waiting, eta, seq))
                watcher.outbox.offer(frame, replaceable=True)

    def _quote(self, number: int, position: int, eta_s: int) -> None:
        """Hand a ticket's first quoted ETA to `quote`, once: later flushes skip the call."""
        self.quoted.add(number)
        if self.quote is not None:
            self.quote(self.name, number, position, eta_s)

    def reset(self, snapshot: Snapshot, views: dict[int, TicketView]) -> None:
        """Start over from a snapshot: every watcher is rechecked, finished ones are told."""
        if self.mirror is None:
            self.mirror = LineMirror(snapshot)
        else:
            self.mirror.reset(snapshot)
        for number in list(self.watchers):
            view = views.get(number)
            if view is not None and view.status == "waiting":
                self.mirror.watch(number)
            elif view is not None:
                self.mirror.unwatch(number)
                for watcher in list(self.watchers.get(number, ())):
                    self.send_state(watcher, view)
        self.dirty.update(self.watchers)
