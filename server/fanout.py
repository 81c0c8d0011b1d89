"""Fan-out: the asyncio driver of one node's per-queue watches (`protocol.watch`).

Per queue with local watchers the node holds a `QueueWatch`, which decides everything: who is
moved by a notice, what each watcher is sent, when to flush and when to resync. This module
only carries its inputs and actions: notices from the node's pub/sub connection, snapshots and
ticket reads from Redis, timers from the event loop, frames into the watchers' outboxes. Why it
stays exact is in docs/architecture.md; why a notice is applied, and its flush written, in the
turn of the loop that read it is there too ("A storm must not hold the loop").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, assert_never

from protocol.connection import Connection, Role
from protocol.eta import EtaEstimator
from protocol.line import Notice
from protocol.messages import Moved, ServerMessage
from protocol.names import ticket_id
from protocol.ticket import FINAL_STATUSES, TicketView
from protocol.watch import (
    Action,
    End,
    FlushAt,
    Follow,
    Frames,
    QueueWatch,
    Quote,
    ReadBook,
    Reconnect,
    Resync,
    ResyncReason,
)
from server.counters import observe_push
from server.errors import Unavailable
from server.outbox import Outbox, Writer, offer_each
from server.store import Resubscribed, Store
from server.store.books import read_book
from server.store.notices import Item
from server.sweeper import Sweeper
from server.tasks import cancel_all
from server.ticketreads import TicketReads

log = logging.getLogger(__name__)

UNSUBSCRIBE_GRACE_S = 10.0

__all__ = ["FINAL_STATUSES", "Fanout", "ViewWatcher", "Watcher"]


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark an opening's failure as seen: the watchers awaiting it were told (Unavailable)."""
    if not task.cancelled():
        task.exception()


@dataclass(eq=False, slots=True)
class Watcher:
    """One WebSocket connection watching one ticket."""

    queue: str
    number: int
    conn: Connection
    outbox: Outbox
    end: Callable[[], None]  # close the connection normally once its ticket is finished
    # close it with 1012 so that the client reconnects and starts over (see protocol.watch)
    restart: Callable[[], None] = lambda: None
    # The outbox's straight path, kept here by the outbox (`Outbox.fronted_by`): a flush holds
    # the watcher already, and reaches the transport without fetching the outbox from memory.
    direct: Writer | None = field(default=None, init=False)
    headers: tuple[bytes, ...] = field(default=(), init=False)
    fd: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        self.outbox.fronted_by(self)

    def send(self, message: ServerMessage) -> None:
        """One message outside the watch (the answer to `leave`), through the same outbox."""
        if self.conn.outgoing(message):
            self.outbox.offer(self.conn.codec.encode(message), replaceable=False)


@dataclass(eq=False, slots=True)
class ViewWatcher(Watcher):
    """One WebSocket connection watching a queue's line (staff) or board; `number` is 0."""

    role: Role = Role.BOARD
    key_id: str | None = None  # the staff key of a `watch_queue`, to close it on revocation
    revoked: Callable[[], None] = lambda: None  # close it with 1008: its key was revoked


@dataclass(eq=False)
class _Queue:
    """A queue's watch plus what the driver keeps for it: its ticket reads, its timer and when
    it went idle."""

    name: str
    watch: QueueWatch[Watcher]
    reads: TicketReads
    flush_handle: asyncio.TimerHandle | None = None
    flushed_at: float = float("-inf")  # time.time() when its last flush was written
    idle_since: float | None = None
    # Seeding and subscribing, once: every watcher of the queue awaits it before it registers.
    opening: asyncio.Task[None] | None = None


class Fanout:
    def __init__(self, store: Store, flush_ms: float, stuck_close_s: float, check_s: float) -> None:
        self.store = store
        self.flush_s = flush_ms / 1000.0
        self.check_s = check_s  # 0: no periodic drift check
        self.queues: dict[str, _Queue] = {}
        self.sweeper = Sweeper(stuck_close_s)
        # Resyncs started, by cause (/readyz): "drift" stays 0 while the notice path works.
        self.resyncs: dict[str, int] = {reason.value: 0 for reason in ResyncReason}
        self._notices = store.notices(self._on_notice)
        self._tasks: list[asyncio.Task[None]] = []
        self._resync_tasks: set[asyncio.Task[None]] = set()
        # Hooks set by the app: prime a new queue's wait estimate from its history
        # (server.history), record the first estimate each ticket is quoted (server.persister),
        # sign a ticket token (server.auth: a transferred ticket's watchers get one for the new
        # ticket).
        self.seed_eta: Callable[[str, EtaEstimator], Awaitable[None]] | None = None
        self.on_quote: Callable[[str, int, int, int], None] | None = None
        self.sign: Callable[[str, str], str] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._check_drift(), name="fanout-drift"),
            loop.create_task(self.sweeper.run(), name="fanout-sweeper"),
        ]

    async def stop(self) -> None:
        await cancel_all([*self._tasks, *self._resync_tasks])
        await self._notices.close()

    @property
    def watcher_count(self) -> int:
        return sum(q.watch.watcher_count for q in self.queues.values())

    # -- watchers -------------------------------------------------------------------------------

    async def add(self, watcher: Watcher, nonce: str) -> TicketView | None:
        """Register a watcher, read its ticket, then send it the ticket's current state.

        Registering before the read is what keeps it exact: every notice applied meanwhile
        moves it too, and `QueueWatch.start` settles the read against the mirror by seq.
        Returns None for an unknown ticket or another ticket's token (nothing is sent then).
        """
        q = await self._followed(watcher.queue)
        q.idle_since = None
        q.watch.register(watcher, watcher.number, watcher.conn)
        try:
            view = await q.reads.read(watcher.number)  # with the other watches arriving now
        except Unavailable:
            self.remove(watcher)
            raise
        if view is None or view.nonce != nonce:
            self.remove(watcher)
            return None
        self._run(q, q.watch.start(watcher, view, time.time()))
        return view

    def remove(self, watcher: Watcher) -> None:
        self.sweeper.discard(watcher.outbox)
        watcher.outbox.fronted_by(None)  # no flush writes to it now; a cycle less to collect
        q = self.queues.get(watcher.queue)
        if q is not None:
            if isinstance(watcher, ViewWatcher):
                q.watch.unregister_view(watcher)
            else:
                q.watch.unregister(watcher, watcher.number)
            if q.watch.idle:
                q.idle_since = time.monotonic()

    async def add_view(self, watcher: ViewWatcher) -> None:
        """Register a staff or board watcher; its first frames come once the book is read."""
        q = await self._followed(watcher.queue)
        q.idle_since = None
        self._run(q, q.watch.register_view(watcher, watcher.role, watcher.conn))

    def close_views_of_key(self, key_id: str) -> int:
        """A staff key was revoked: end its `watch_queue` connections; how many there were."""
        views = [
            w
            for q in self.queues.values()
            for w in q.watch.views.watchers
            if isinstance(w, ViewWatcher) and w.key_id == key_id
        ]
        for view in views:
            view.revoked()
        return len(views)

    async def _followed(self, name: str) -> _Queue:
        """The queue's watch once its notices are subscribed to; Unavailable if they cannot be.

        The first watcher opens it and the ones that arrive meanwhile wait for the same opening:
        a watcher registers only in a watch whose subscription stands. (Registering them at once
        left those of an opening that failed in a watch the node no longer held: no notice, no
        resync and no drift check ever reached them again.)
        """
        while True:
            q = self.queues.get(name)
            if q is None:
                watch: QueueWatch[Watcher] = QueueWatch(name, self.flush_s)
                reads = TicketReads(lambda numbers: self.store.tickets(name, numbers))
                q = self.queues[name] = _Queue(name, watch, reads)
                q.opening = asyncio.get_running_loop().create_task(self._open(q))
                q.opening.add_done_callback(_retrieve)
                self._resync_tasks.add(q.opening)  # stop() cancels one still under way
                q.opening.add_done_callback(self._resync_tasks.discard)
            assert q.opening is not None
            await asyncio.shield(q.opening)  # a watcher that goes away does not cancel it
            if self.queues.get(name) is q:
                return q

    async def _open(self, q: _Queue) -> None:
        try:
            if self.seed_eta is not None:
                await self.seed_eta(q.name, q.watch.eta)
            await self._notices.subscribe(q.name)  # its confirmation starts the first snapshot
        except BaseException:  # Unavailable, or cancelled: the next watcher opens it anew
            if self.queues.get(q.name) is q:
                del self.queues[q.name]
            raise

    # -- actions --------------------------------------------------------------------------------

    def _run(self, q: _Queue, actions: list[Action[Watcher]]) -> None:
        flush_at: float | None = None
        for action in actions:
            if isinstance(action, Frames):
                offer_each(action.watchers, action.frames, action.replaceable)
                if action.notice_at_s is not None:  # once per flush, never per frame
                    observe_push(time.time() - action.notice_at_s)
            elif isinstance(action, End):
                action.watcher.end()
            elif isinstance(action, FlushAt):
                flush_at = action.at_s  # after the rest: it may flush at once
            elif isinstance(action, Resync):
                self._resync(q, action)
            elif isinstance(action, Quote):
                if self.on_quote is not None:
                    self.on_quote(q.name, action.number, action.position, action.eta_s)
            elif isinstance(action, ReadBook):
                self._spawn(self._read_book(q, action.delay_s))
            elif isinstance(action, Follow):
                self._spawn(self._follow(q, action))
            elif isinstance(action, Reconnect):
                self.resyncs[ResyncReason.REWOUND.value] += 1
                log.warning(
                    "queue %s: Redis came back behind what %d watchers were shown; they reconnect",
                    q.name,
                    len(action.watchers),
                )
                for watcher in action.watchers:
                    watcher.restart()
            else:
                assert_never(action)
        if flush_at is not None:
            self._schedule_flush(q, flush_at)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._resync_tasks.add(task)
        task.add_done_callback(self._resync_tasks.discard)

    async def _read_book(self, q: _Queue, delay_s: float) -> None:
        """The views' one read (names, priorities, calls), retried while Redis is away."""
        if delay_s:
            await asyncio.sleep(delay_s)
        backoff = 0.05
        while self.queues.get(q.name) is q:
            try:
                book = await read_book(self.store, q.name)
            except Unavailable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self._run(q, q.watch.receive_book(book, time.time()))
            return

    async def _follow(self, q: _Queue, follow: Follow[Watcher]) -> None:
        """Tell a transferred ticket's watchers where it went, with a token for the new ticket
        signed here, then close them. If that cannot be read, close them all the same: their
        next watch with the old token is answered the same way."""
        try:
            view = await self.store.ticket(q.name, follow.number)
        except Unavailable:
            view = None
        old_id = ticket_id(q.name, follow.number)
        if view is not None and view.to_queue and view.to_number and view.to_nonce and self.sign:
            new_id = ticket_id(view.to_queue, view.to_number)
            moved = Moved(
                old_id, new_id, view.to_queue, self.sign(new_id, view.to_nonce), follow.seq
            )
            for watcher in follow.watchers:
                watcher.send(moved)
        for watcher in follow.watchers:
            watcher.end()

    def _schedule_flush(self, q: _Queue, at_s: float) -> None:
        if q.flush_handle is not None:
            q.flush_handle.cancel()
            q.flush_handle = None
        now = time.time()
        if at_s <= now and now - q.flushed_at >= self.flush_s:
            # Due, and the queue was quiet for an interval: write it in this turn of the loop.
            # A timer would wait for the next turn, behind every socket ready meanwhile (tens of
            # ms in a storm). Right after a flush it does wait: the notices that came during a
            # long flush are read in one go, and go out in one flush, not one flush each.
            self._flush(q)
            return
        delay = max(0.0, at_s - now)
        q.flush_handle = asyncio.get_running_loop().call_later(delay, self._flush, q)

    def _flush(self, q: _Queue) -> None:
        q.flush_handle = None
        self._write_flush(q, q.watch.flush(time.time()))

    def _write_flush(self, q: _Queue, flushed: list[Action[Watcher]]) -> None:
        """Carry out what a flush computed; its end is what `_schedule_flush` measures from."""
        self._run(q, flushed)
        q.flushed_at = time.time()

    # -- notices --------------------------------------------------------------------------------

    def _on_notice(self, item: Item) -> None:
        """A notice, or a confirmed subscription, handed over by the pub/sub reader as it reads
        it: applied, and its flush written if one is due, before the reader reads on."""
        name = item.queue if isinstance(item, Resubscribed) else item[0]
        q = self.queues.get(name)
        if q is None:
            return
        try:
            if isinstance(item, Resubscribed):
                self._run(q, q.watch.resubscribed())
                return
            try:
                notice = Notice.from_wire(item[1])
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed notice on queue %s", name)
                return
            self._run(q, q.watch.receive_notice(notice, time.time()))
        except Exception:
            # A bug here must not silence the queue's watchers, nor the reader that serves every
            # queue: log it and reload the queue, whose notice may be applied only in part.
            log.exception("applying a notice of queue %s failed; resyncing it", name)
            self._run(q, q.watch.restart())

    # -- resync ---------------------------------------------------------------------------------

    def _resync(self, q: _Queue, resync: Resync) -> None:
        self.resyncs[resync.reason.value] += 1
        if resync.reason is not ResyncReason.INITIAL:
            log.info("queue %s: resync (%s)", q.name, resync.reason.value)
        self._spawn(self._read_snapshot(q, resync.delay_s))

    async def _read_snapshot(self, q: _Queue, delay_s: float) -> None:
        """Read the queue and its watched tickets in one transaction, retrying while Redis is
        away, and feed the result to the watch."""
        if delay_s:
            await asyncio.sleep(delay_s)
        backoff = 0.05
        while self.queues.get(q.name) is q:
            try:
                snapshot, views = await self.store.snapshot(q.name, q.watch.watched())
            except Unavailable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self._run(q, q.watch.receive_snapshot(snapshot, views, time.time()))
            return

    async def _check_drift(self) -> None:
        """Every few seconds compare each queue's seq with Redis: lost last notices show here."""
        while True:
            await asyncio.sleep(self.check_s or UNSUBSCRIBE_GRACE_S / 2)
            await self._unsubscribe_idle()
            if not self.check_s:  # VQ_RESYNC_CHECK_S=0: the drift check is off
                continue
            queues = list(self.queues.values())
            if not queues:
                continue
            try:
                rows = await self.store.seqs([q.name for q in queues])
            except Unavailable:
                continue
            for q, (epoch, seq) in zip(queues, rows, strict=True):
                if self.queues.get(q.name) is q:
                    self._run(q, q.watch.check(epoch, seq))

    async def _unsubscribe_idle(self) -> None:
        now = time.monotonic()
        for name, q in list(self.queues.items()):
            if q.idle_since is not None and now - q.idle_since > UNSUBSCRIBE_GRACE_S:
                del self.queues[name]
                if q.flush_handle is not None:
                    q.flush_handle.cancel()
                with contextlib.suppress(Unavailable):
                    await self._notices.unsubscribe(name)
