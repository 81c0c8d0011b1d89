"""Fan-out: one node's watchers, kept exact from its queues' change notices.

Per queue with local watchers the node holds a `LineMirror` (the waiting numbers in order) fed by
pub/sub notices, so each event costs O(1) Redis calls and O(watchers it moved) work. Changed
positions are flushed leading-edge, then coalesced per `flush_ms`. A gap in `seq`, a new epoch, a
resubscribe, or a drift seen by the periodic check reloads the queue from a snapshot and
corrects every watcher (DESIGN.md invariants 2-5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from protocol.connection import Connection
from protocol.eta import EtaEstimator
from protocol.flush import FlushPolicy
from protocol.line import EventKind, LineMirror, Notice, Outcome
from protocol.messages import Called, Position, ServerMessage, Status
from protocol.names import ticket_id
from server.errors import Unavailable
from server.outbox import Outbox
from server.store import Resubscribed, Store, TicketView

log = logging.getLogger(__name__)

FINAL_STATUSES = ("served", "no_show", "left")
UNSUBSCRIBE_GRACE_S = 10.0


@dataclass(eq=False)
class Watcher:
    """One WebSocket connection watching one ticket."""

    queue: str
    number: int
    conn: Connection
    outbox: Outbox
    end: Callable[[], None]  # close the connection normally once its ticket is finished

    def send(self, message: ServerMessage, frame_cache: dict[object, bytes] | None = None) -> None:
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
    """This node's view of one queue."""

    name: str
    mirror: LineMirror | None = None
    watchers: dict[int, set[Watcher]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    eta: EtaEstimator = field(default_factory=EtaEstimator)
    flush: FlushPolicy = field(default_factory=lambda: FlushPolicy(0.05))
    flush_handle: asyncio.Handle | None = None
    pending: list[Notice] = field(default_factory=list)
    resyncing: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    drift_seq: int | None = None
    idle_since: float | None = None


def parse_notice(raw: bytes) -> Notice:
    data = orjson.loads(raw)
    counter = data.get("c")
    return Notice(
        epoch=str(data["e"]),
        seq=int(data["s"]),
        kind=EventKind(data["k"]),
        number=int(data["n"]) if "n" in data else None,
        waiting=int(data["w"]),
        counter=None if counter is None else str(counter),
        at_ms=int(data.get("at", 0)),
    )


class Fanout:
    def __init__(self, store: Store, flush_ms: float, stuck_close_s: float, check_s: float) -> None:
        self.store = store
        self.flush_s = flush_ms / 1000.0
        self.stuck_close_s = stuck_close_s
        self.check_s = check_s
        self.queues: dict[str, QueueWatch] = {}
        self.resyncs = 0
        self._notices = store.notices()
        self._backlogged: set[Outbox] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_notices(), name="fanout-notices"),
            loop.create_task(self._check_drift(), name="fanout-drift"),
            loop.create_task(self._sweep(), name="fanout-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._notices.close()

    @property
    def watcher_count(self) -> int:
        return sum(len(s) for q in self.queues.values() for s in q.watchers.values())

    async def kill_subscription(self) -> None:
        await self._notices.kill()

    # -- watchers -------------------------------------------------------------------------------

    async def add(self, watcher: Watcher) -> TicketView | None:
        """Register a watcher, then send its ticket's current state (invariant 4).

        Registering first means no event can fall between the state read and the registration:
        anything newer than the read reaches the watcher as an event, and the connection's seq
        filter drops whichever of the two is older. Returns None for an unknown ticket.
        """
        qw = self.queues.get(watcher.queue)
        if qw is None:
            qw = self.queues[watcher.queue] = QueueWatch(watcher.queue)
            qw.flush = FlushPolicy(self.flush_s)
            await self._notices.subscribe(watcher.queue)
        qw.idle_since = None
        qw.watchers.setdefault(watcher.number, set()).add(watcher)
        try:
            await asyncio.wait_for(qw.ready.wait(), timeout=10.0)
            view = await self.store.ticket(watcher.queue, watcher.number)
        except (TimeoutError, Unavailable):
            self.remove(watcher)
            raise Unavailable("the live queue is not available right now") from None
        if view is None:
            self.remove(watcher)
            return None
        if view.status == "waiting" and qw.mirror is not None:
            qw.mirror.watch(watcher.number)
        self._send_state(qw, watcher, view)
        return view

    def remove(self, watcher: Watcher) -> None:
        qw = self.queues.get(watcher.queue)
        if qw is None:
            return
        group = qw.watchers.get(watcher.number)
        if group is not None:
            group.discard(watcher)
            if not group:
                del qw.watchers[watcher.number]
                qw.dirty.discard(watcher.number)
                if qw.mirror is not None:
                    qw.mirror.unwatch(watcher.number)
        self._backlogged.discard(watcher.outbox)
        if not qw.watchers:
            qw.idle_since = time.monotonic()

    def _send_state(self, qw: QueueWatch, watcher: Watcher, view: TicketView) -> None:
        tid = ticket_id(qw.name, view.number)
        if view.status == "waiting" and view.position is not None:
            eta = self._eta(qw, view.position, view.queue_state)
            watcher.send(Position(tid, view.position, view.waiting, eta, view.seq))
        elif view.status == "called":
            watcher.send(Called(tid, view.counter, view.seq))
        elif view.status in FINAL_STATUSES:
            watcher.send(Status(tid, view.status, view.seq))
            watcher.end()

    def _eta(self, qw: QueueWatch, position: int, state: str) -> int | None:
        if state != "open":
            return None
        return qw.eta.estimate_s(position, time.time())

    # -- notices --------------------------------------------------------------------------------

    async def _read_notices(self) -> None:
        while True:
            try:
                await self._consume_notices()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug here must not silence every watcher of this node: log it, start over
                # and reload every queue, since notices may have been dropped meanwhile.
                log.exception("notice reader failed; restarting it")
                await asyncio.sleep(0.5)
                for qw in self.queues.values():
                    self._start_resync(qw)

    async def _consume_notices(self) -> None:
        async for item in self._notices.messages():
            if isinstance(item, Resubscribed):
                qw = self.queues.get(item.queue)
                if qw is not None:
                    self._start_resync(qw)
                continue
            queue, raw = item
            qw = self.queues.get(queue)
            if qw is None:
                continue
            try:
                notice = parse_notice(raw)
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed notice on queue %s", queue)
                continue
            if qw.mirror is None or qw.resyncing:
                qw.pending.append(notice)
            else:
                self._apply(qw, notice)

    def _apply(self, qw: QueueWatch, notice: Notice) -> None:
        assert qw.mirror is not None
        outcome, moved = qw.mirror.apply(notice)
        if outcome is Outcome.STALE:
            return
        if outcome is Outcome.GAP:
            self._start_resync(qw)
            qw.pending.append(notice)
            return
        qw.dirty.update(moved)
        kind = notice.kind
        if kind is EventKind.CALLED:
            qw.eta.record_call(notice.at_ms / 1000.0)
        number = notice.number
        if number is not None and kind is not EventKind.JOINED:
            self._ticket_event(qw, notice, number)
        elif number is None:  # paused, resumed, closed, opened: every ETA changes
            qw.dirty.update(qw.watchers)
        self._schedule_flush(qw)

    def _ticket_event(self, qw: QueueWatch, notice: Notice, number: int) -> None:
        group = qw.watchers.get(number)
        if not group:
            return
        assert qw.mirror is not None
        qw.mirror.unwatch(number)
        qw.dirty.discard(number)
        tid = ticket_id(qw.name, number)
        message: ServerMessage
        if notice.kind is EventKind.CALLED:
            message = Called(tid, notice.counter, notice.seq)
        else:
            message = Status(tid, notice.kind.value, notice.seq)
        cache: dict[object, bytes] = {}
        for watcher in list(group):
            watcher.send(message, cache)
            if notice.kind is not EventKind.CALLED:
                watcher.end()

    def _schedule_flush(self, qw: QueueWatch) -> None:
        if qw.flush_handle is not None or not qw.dirty:
            return
        loop = asyncio.get_running_loop()
        delay = qw.flush.delay_s(time.monotonic())
        if delay <= 0:
            qw.flush_handle = loop.call_soon(self._flush, qw)
        else:
            qw.flush_handle = loop.call_later(delay, self._flush, qw)

    def _flush(self, qw: QueueWatch) -> None:
        qw.flush_handle = None
        qw.flush.flushed(time.monotonic())
        mirror = qw.mirror
        if mirror is None:
            return
        dirty, qw.dirty = qw.dirty, set()
        now = time.time()
        open_queue = mirror.state == "open"
        waiting, seq = mirror.waiting, mirror.seq
        for number in dirty:
            group = qw.watchers.get(number)
            position = mirror.position(number)
            if not group or position is None:
                continue
            eta = qw.eta.estimate_s(position, now) if open_queue else None
            message = Position(ticket_id(qw.name, number), position, waiting, eta, seq)
            cache: dict[object, bytes] = {}
            for watcher in group:
                watcher.send(message, cache)

    # -- resync ---------------------------------------------------------------------------------

    def _start_resync(self, qw: QueueWatch) -> None:
        if qw.resyncing:
            return
        qw.resyncing = True
        asyncio.get_running_loop().create_task(self._resync(qw))

    async def _resync(self, qw: QueueWatch) -> None:
        """Reload the queue from Redis and correct every local watcher."""
        backoff = 0.05
        while True:
            try:
                snap, views = await self.store.snapshot(qw.name, list(qw.watchers))
                break
            except Unavailable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        self.resyncs += 1
        if snap is None:  # Redis lost the queue: wait for it to be rebuilt (new epoch)
            qw.resyncing = False
            qw.pending.clear()
            return
        if qw.mirror is None:
            qw.mirror = LineMirror(snap)
        else:
            qw.mirror.reset(snap)
        for number in qw.watchers:
            view = views.get(number)
            if view is not None and view.status == "waiting":
                qw.mirror.watch(number)
            elif view is not None:
                qw.mirror.unwatch(number)
                for watcher in list(qw.watchers.get(number, ())):
                    self._send_state(qw, watcher, view)
        qw.dirty.update(qw.watchers)
        pending, qw.pending = qw.pending, []
        qw.resyncing = False
        qw.ready.set()
        for notice in pending:
            if qw.resyncing:
                qw.pending.append(notice)
            else:
                self._apply(qw, notice)
        self._schedule_flush(qw)

    async def _check_drift(self) -> None:
        """Every few seconds compare each queue's seq with Redis: lost last notices show here."""
        while True:
            await asyncio.sleep(self.check_s)
            await self._unsubscribe_idle()
            names = [n for n, q in self.queues.items() if q.mirror is not None and not q.resyncing]
            if not names:
                continue
            try:
                rows = await self.store.seqs(names)
            except Unavailable:
                continue
            for name, (epoch, seq) in zip(names, rows, strict=True):
                qw = self.queues.get(name)
                if qw is None or qw.mirror is None:
                    continue
                behind = epoch != qw.mirror.epoch or (seq is not None and seq > qw.mirror.seq)
                if not behind:
                    qw.drift_seq = None
                elif qw.drift_seq is not None and qw.mirror.seq < qw.drift_seq:
                    log.info("queue %s drifted (seq %s < %s); resyncing", name, qw.mirror.seq, seq)
                    self._start_resync(qw)
                    qw.drift_seq = None
                else:  # maybe just in flight: look again next round
                    qw.drift_seq = seq if epoch == qw.mirror.epoch else qw.mirror.seq + 1

    async def _unsubscribe_idle(self) -> None:
        now = time.monotonic()
        for name, qw in list(self.queues.items()):
            if qw.idle_since is not None and now - qw.idle_since > UNSUBSCRIBE_GRACE_S:
                del self.queues[name]
                if qw.flush_handle is not None:
                    qw.flush_handle.cancel()
                with contextlib.suppress(Unavailable):
                    await self._notices.unsubscribe(name)

    # -- slow sockets ---------------------------------------------------------------------------

    def backlogged(self, outbox: Outbox) -> None:
        self._backlogged.add(outbox)

    async def _sweep(self) -> None:
        """Retry backlogged outboxes; abort the ones stuck longer than `stuck_close_s`."""
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for outbox in list(self._backlogged):
                if outbox.closed or outbox.retry():
                    self._backlogged.discard(outbox)
                elif (
                    outbox.stuck_since is not None and now - outbox.stuck_since > self.stuck_close_s
                ):
                    log.info("closing a connection stuck for %.1f s", now - outbox.stuck_since)
                    outbox.abort()
                    self._backlogged.discard(outbox)
