"""Fan-out: one node's watchers, kept exact from its queues' change notices.

Per queue with local watchers the node holds a `QueueWatch` (a `LineMirror` of the waiting
numbers, fed by pub/sub notices), so each event costs O(1) Redis calls and O(watchers it moved)
work. Changed positions are flushed leading-edge, then coalesced per `flush_ms`. A gap in `seq`,
a new epoch, a resubscribe, or a drift seen by the periodic check reloads the queue from a
snapshot and corrects every watcher (DESIGN.md invariants 2-5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from protocol.eta import EtaEstimator
from protocol.flush import FlushPolicy
from protocol.line import Notice, Outcome
from server.errors import Unavailable
from server.queuewatch import FINAL_STATUSES, QueueWatch, Watcher
from server.store import Resubscribed, Store, TicketView
from server.sweeper import Sweeper

log = logging.getLogger(__name__)

UNSUBSCRIBE_GRACE_S = 10.0
READY_TIMEOUT_S = 10.0
RETRY_MISSING_S = 1.0
RESYNC_REASONS = ("gap", "resubscribe", "reader_restart", "drift", "missing")


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and await tasks, cancelling again if a cancel was swallowed (redis-py can)."""
    for _ in range(10):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    log.warning("some background tasks would not stop")


__all__ = ["FINAL_STATUSES", "Fanout", "Watcher"]


class Fanout:
    def __init__(self, store: Store, flush_ms: float, stuck_close_s: float, check_s: float) -> None:
        self.store = store
        self.flush_s = flush_ms / 1000.0
        self.check_s = check_s
        self.queues: dict[str, QueueWatch] = {}
        self.sweeper = Sweeper(stuck_close_s)
        self._notices = store.notices()
        self._tasks: list[asyncio.Task[None]] = []
        # Resyncs started, by what caused them (/readyz): "drift" must stay 0 while notices flow.
        self.resyncs: dict[str, int] = dict.fromkeys(RESYNC_REASONS, 0)
        # Hooks set by the app: prime a new queue's wait estimate from its history
        # (server.history), record the first estimate each ticket is quoted (server.persister).
        self.seed_eta: Callable[[str, EtaEstimator], Awaitable[None]] | None = None
        self.on_quote: Callable[[str, int, int, int], None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_notices(), name="fanout-notices"),
            loop.create_task(self._check_drift(), name="fanout-drift"),
            loop.create_task(self.sweeper.run(), name="fanout-sweeper"),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        await self._notices.close()

    @property
    def watcher_count(self) -> int:
        return sum(len(s) for q in self.queues.values() for s in q.watchers.values())

    # -- watchers -------------------------------------------------------------------------------

    async def add(self, watcher: Watcher) -> TicketView | None:
        """Register a watcher, then send its ticket's current state (invariant 4).

        Registering first means no event can fall between the state read and the registration:
        anything newer than the read reaches the watcher as an event, and the connection's seq
        filter drops whichever of the two is older. Returns None for an unknown ticket.
        """
        qw = self.queues.get(watcher.queue)
        if qw is None:
            qw = self.queues[watcher.queue] = QueueWatch(watcher.queue, FlushPolicy(self.flush_s))
            qw.quote = self.on_quote
            await self._notices.subscribe(watcher.queue)
            if self.seed_eta is not None:
                await self.seed_eta(watcher.queue, qw.eta)
        qw.add(watcher)
        try:
            await asyncio.wait_for(qw.ready.wait(), timeout=READY_TIMEOUT_S)
            view = await self.store.ticket(watcher.queue, watcher.number)
        except (TimeoutError, Unavailable):
            self.remove(watcher)
            raise Unavailable("the live queue is not available right now") from None
        if view is None:
            self.remove(watcher)
            return None
        qw.send_state(watcher, view)
        return view

    def remove(self, watcher: Watcher) -> None:
        self.sweeper.discard(watcher.outbox)
        qw = self.queues.get(watcher.queue)
        if qw is not None:
            qw.remove(watcher)

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
                    self._start_resync(qw, "reader_restart")

    async def _consume_notices(self) -> None:
        async for item in self._notices.messages():
            if isinstance(item, Resubscribed):
                qw = self.queues.get(item.queue)
                if qw is not None:
                    self._start_resync(qw, "resubscribe")
                continue
            queue, raw = item
            qw = self.queues.get(queue)
            if qw is None:
                continue
            try:
                notice = Notice.from_wire(raw)
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed notice on queue %s", queue)
                continue
            if qw.mirror is None or qw.resyncing:
                qw.pending.append(notice)
            else:
                self._apply(qw, notice)

    def _apply(self, qw: QueueWatch, notice: Notice) -> None:
        if qw.apply(notice) is Outcome.GAP:
            self._start_resync(qw, "gap")
            qw.pending.append(notice)
            return
        self._schedule_flush(qw)

    def _schedule_flush(self, qw: QueueWatch) -> None:
        if qw.flush_handle is not None or not qw.dirty:
            return
        loop = asyncio.get_running_loop()
        delay = qw.flush.delay_s(time.monotonic())
        if delay <= 0:
            qw.flush_handle = loop.call_soon(qw.flush_positions)
        else:
            qw.flush_handle = loop.call_later(delay, qw.flush_positions)

    # -- resync ---------------------------------------------------------------------------------

    def _start_resync(self, qw: QueueWatch, reason: str) -> None:
        if qw.resyncing:
            return
        self.resyncs[reason] += 1
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
        if snap is None:  # Redis lost the queue: look again until it is rebuilt (a new epoch)
            qw.resyncing = False
            qw.pending.clear()
            if self.queues.get(qw.name) is qw and qw.watchers:
                asyncio.get_running_loop().call_later(
                    RETRY_MISSING_S, self._start_resync, qw, "missing"
                )
            return
        qw.reset(snap, views)
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
            await asyncio.sleep(self.check_s or UNSUBSCRIBE_GRACE_S / 2)
            await self._unsubscribe_idle()
            if not self.check_s:  # VQ_RESYNC_CHECK_S=0: the drift check is off
                continue
            names = [n for n, q in self.queues.items() if q.mirror is not None and not q.resyncing]
            if not names:
                continue
            try:
                rows = await self.store.seqs(names)
            except Unavailable:
                continue
            for name, (epoch, seq) in zip(names, rows, strict=True):
                qw = self.queues.get(name)
                if qw is not None and qw.mirror is not None:
                    self._judge_drift(qw, epoch, seq)

    def _judge_drift(self, qw: QueueWatch, epoch: str | None, seq: int | None) -> None:
        assert qw.mirror is not None
        behind = epoch != qw.mirror.epoch or (seq is not None and seq > qw.mirror.seq)
        if not behind:
            qw.drift_seq = None
        elif qw.drift_seq is not None and qw.mirror.seq < qw.drift_seq:
            log.info("queue %s drifted (seq %s < %s); resyncing", qw.name, qw.mirror.seq, seq)
            self._start_resync(qw, "drift")
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
