"""The notifier: from the queues' event streams to deliveries, and the deliveries out.

Planning. Every node reads the streams through the notifier's consumer group (as the persister
does through its own): an entry goes to one node and stays pending until that node has recorded
in PostgreSQL, in one transaction, every delivery the event owes (webhooks; "almost your turn"
and "your turn" to the ticket's contacts) and what it does to contacts (finished, moved); then it
is acknowledged. A node that dies holding entries leaves them to the others (XAUTOCLAIM after
`claim_idle_ms`). Delivery ids are derived from what they are, so a batch planned twice records
nothing new.

Positions come from the line itself: after a batch that may have moved a queue's line, the first
`notify_ahead` tickets of its sorted set are read (one ZRANGE), and those with contacts whose
"almost" is not planned yet get one, marked planned in the same transaction. A called ticket's
contact row is marked too, under the same row lock, so an "almost" is never planned after its
ticket's call.

Sending. Each node leases due deliveries from PostgreSQL (`DeliveryTable.claim`: skip-locked,
with a lease longer than any attempt), so no two nodes attempt one at once and a dead node's are
taken over when their lease runs out; the claim keeps each ticket's notifications per channel in
order, and a webhook's first attempts in `seq` order per queue. Several sends run at once; a
failure is retried after growing, jittered delays (`VQ_WEBHOOK_RETRY_S`), then the delivery is
dead.

Contacts of a finished ticket are deleted in the transaction that plans its finishing event.
Only when another node holds an earlier event of the queue, unacknowledged (it died mid-batch, and
its events are claimed after `claim_idle_ms`), are they marked instead and deleted
`CONTACT_GRACE_S` later, so that the ticket's call, planned late, still finds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from server.db import Database
from server.db.deliveries import DeliveryTable, Due, PlanWriter, WebhookTable
from server.errors import Unavailable
from server.events import StreamEvent
from server.keys import NOTIFIER_GROUP, PERSISTER_GROUP
from server.notify.channels import ANSWER_TIMEOUT_S, Channel, Sent
from server.notify.plan import (
    CALLS,
    CHANNELS,
    FINISHES,
    LINE_MOVES,
    Hook,
    Planned,
    Reach,
    notice_message,
    plan_notice,
    plan_webhooks,
    retry_delay,
    ticket_numbers,
)
from server.queuesettings import settings_view
from server.store import Store
from server.store.events import EventStreams
from server.tasks import cancel_all

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0
CONTACT_GRACE_S = 60.0
KEEP_DONE_S = (
    7 * 86400.0
)  # delivered and dropped deliveries are kept a week, dead ones until retried
HOUSEKEEPING_S = 2.0
LAG_SAMPLES = 2000
# Queue metas and webhooks are read at most this often per node: a new webhook gets the events
# planned from at most this long after its creation (at once on the node that made it).
CACHE_S = 1.0
COALESCE_S = 0.005  # a wake waits this long so that one lease query serves several
ATTEMPT_LIMIT_S = ANSWER_TIMEOUT_S + 5.0  # an attempt is cut after this; the lease outlives it


def _queue_link(public_url: str | None, queue: str) -> str | None:
    return None if public_url is None else f"{public_url}/q/{queue}"


class Notifier:
    def __init__(
        self,
        store: Store,
        db: Database,
        channels: dict[str, Channel],
        *,
        retry_s: tuple[float, ...],
        public_url: str | None = None,
        consumer: str | None = None,
        batch: int = 500,
        claim_idle_ms: int = 10_000,
        block_ms: int = 500,
        lease_s: float = 30.0,
        concurrency: int = 32,
    ) -> None:
        self.store = store
        self.streams = EventStreams(store, NOTIFIER_GROUP, companions=(PERSISTER_GROUP,))
        self.deliveries = DeliveryTable(db)
        self.webhooks = WebhookTable(db)
        self.channels = channels
        self.retry_s = retry_s
        self.public_url = public_url
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.lease_s = max(lease_s, ATTEMPT_LIMIT_S + 1.0)
        self.concurrency = concurrency
        # Figures for /readyz and the metrics.
        self.planned = 0
        self.sent = 0
        self.failed_attempts = 0
        self.counts: dict[str, int] = {"pending": 0, "dead": 0}
        self.events_behind = 0
        # Recent lags, ms: event to its deliveries recorded; delivery recorded to sent; attempts.
        self.plan_lags: deque[int] = deque(maxlen=LAG_SAMPLES)
        self.send_lags: deque[int] = deque(maxlen=LAG_SAMPLES)
        self.attempt_ms: deque[int] = deque(maxlen=LAG_SAMPLES)
        self._queues: list[str] = []
        self._meta_cache: dict[str, tuple[float, dict[str, str] | None]] = {}
        self._hook_cache: dict[str, tuple[float, list[Hook]]] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._plan_loop(), name="notifier-plan"),
            loop.create_task(self._send_loop(), name="notifier-send"),
            loop.create_task(self._housekeeping_loop(), name="notifier-housekeeping"),
        ]
        log.info("notifier %s started (channels: %s)", self.consumer, ", ".join(self.channels))

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await cancel_all(self._tasks)
        self._tasks = []
        if self._inflight:  # attempts under way finish (their lease would hold them otherwise)
            await asyncio.wait(self._inflight, timeout=ATTEMPT_LIMIT_S)
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.aclose()

    def status(self) -> dict[str, Any]:
        return {
            "events_behind": self.events_behind,
            "pending": self.counts["pending"],
            "dead": self.counts["dead"],
            "backlog": self.backlog,
            "in_flight": len(self._inflight),
            "sent": self.sent,
            "failed_attempts": self.failed_attempts,
            "channels": sorted(self.channels),
            "plan_lag_p99_ms": _p99(self.plan_lags),
            "send_lag_p99_ms": _p99(self.send_lags),
            "attempt_p99_ms": _p99(self.attempt_ms),
        }

    def wake(self) -> None:
        """Something became due (a dead delivery retried): lease at once, not at the next poll."""
        self._wake.set()

    @property
    def backlog(self) -> int:
        """Events not yet planned plus deliveries not yet made (`vqueue_notify_backlog`)."""
        return self.events_behind + self.counts["pending"]

    # -- planning -------------------------------------------------------------------------------

    async def _plan_loop(self) -> None:
        backoff = 0.05
        next_refresh = next_claim = 0.0
        claim_every_s = max(0.1, min(5.0, self.claim_idle_ms / 2000))
        while not self._stopping:
            try:
                now = time.monotonic()
                if now >= next_refresh:
                    self._queues = await self.streams.live_queues()
                    next_refresh = now + 1.0
                if not self._queues:
                    await asyncio.sleep(0.2)
                    continue
                if now >= next_claim:
                    next_claim = now + claim_every_s
                    claimed = await self.streams.claim(
                        self.consumer, self._queues, self.claim_idle_ms, self.batch
                    )
                    if claimed:
                        log.info("notifier claimed %d events another node left", len(claimed))
                        await self._handle(claimed)
                events = await self.streams.read(
                    self.consumer, self._queues, self.batch, self.block_ms
                )
                await self._handle(events)
                backoff = 0.05
            except Unavailable as exc:
                if backoff == 0.05:
                    log.warning("notifier cannot plan: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier planning failed; retrying")
                await asyncio.sleep(1.0)

    async def _handle(self, events: list[StreamEvent]) -> None:
        malformed = self.streams.take_malformed()
        if malformed:
            await self.streams.ack(malformed)
        if not events:
            return
        by_queue: dict[str, list[StreamEvent]] = defaultdict(list)
        for event in sorted(events, key=lambda e: (e.queue, e.seq)):
            by_queue[event.queue].append(event)
        backoff = 0.1
        while True:  # Redis or PostgreSQL down: retried here, so no event waits for a claim
            if self._stopping:
                raise asyncio.CancelledError  # left pending: claimed by another node or our restart
            try:
                planned = await self._plan(by_queue)
                break
            except Unavailable as exc:
                if backoff == 0.1:  # once per outage, not once per retry
                    log.warning("notifier cannot plan %d events' deliveries: %s", len(events), exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.planned += planned
        now_ms = int(time.time() * 1000)
        self.plan_lags.extend(now_ms - e.at_ms for e in events)
        # Not trimmed here: the persister trims after its own acks, housekeeping after ours.
        await self.streams.ack(((e.queue, e.entry_id) for e in events), trim=False)
        if planned:
            self._wake.set()

    async def _plan(self, by_queue: dict[str, list[StreamEvent]]) -> int:
        """Record what these events owe; the number of deliveries planned."""
        metas = await self._metas(by_queue)
        venues = {m["venue"] for m in metas.values() if m is not None and "venue" in m}
        hooks = await self._hooks(venues)
        # The channels each queue enables that this node sends on, read once per batch.
        enabled = {q: set() if meta is None else self._enabled(meta) for q, meta in metas.items()}
        tops = await self._line_tops(by_queue, metas, enabled)
        if (
            not hooks
            and not tops
            and not any(
                (e.kind in CALLS and enabled[queue])
                or e.kind in FINISHES
                or e.kind == "transferred"
                for queue, queued in by_queue.items()
                for e in queued
            )
        ):
            return 0  # nothing owed, no contact to touch: PostgreSQL is not asked
        # A finished ticket's contacts go at once, unless another node still holds an earlier
        # event of its queue (it died mid-batch): that event's "your turn" may still need them.
        last_finish: dict[str, str] = {}
        for queue, queued in by_queue.items():
            finishes = [e.entry_id for e in queued if e.kind in FINISHES]
            if finishes:
                last_finish[queue] = finishes[-1]
        held: set[str] = set()
        if last_finish:
            held = await self.streams.held_by_others(last_finish, self.consumer)
        planned = 0
        async with self.deliveries.planning() as writer:
            for queue, queued in by_queue.items():
                planned += await self._plan_queue(
                    writer,
                    queue,
                    queued,
                    metas[queue],
                    hooks,
                    tops.get(queue, []),
                    enabled[queue],
                    queue in held,
                )
        return planned

    async def _metas(
        self, by_queue: dict[str, list[StreamEvent]]
    ) -> dict[str, dict[str, str] | None]:
        """Each queue's meta (name, venue, settings), kept `CACHE_S`; a `settings` event in the
        batch reads it afresh."""
        now = time.monotonic()
        stale = [
            q
            for q, queued in by_queue.items()
            if q not in self._meta_cache
            or self._meta_cache[q][0] < now
            or any(e.kind == "settings" for e in queued)
        ]
        if stale:
            found = await asyncio.gather(*(self.store.queue_meta(q) for q in stale))
            for queue, meta in zip(stale, found, strict=True):
                self._meta_cache[queue] = (now + CACHE_S, meta)
        return {q: self._meta_cache[q][1] for q in by_queue}

    async def _hooks(self, venues: set[str]) -> dict[str, list[Hook]]:
        """The venues' webhooks, kept `CACHE_S` (`forget_webhooks` drops them at once)."""
        now = time.monotonic()
        stale = sorted(
            v for v in venues if v not in self._hook_cache or self._hook_cache[v][0] < now
        )
        if stale:
            found = await self.webhooks.hooks_of(stale)
            for venue in stale:
                self._hook_cache[venue] = (now + CACHE_S, found.get(venue, []))
        return {v: self._hook_cache[v][1] for v in venues if self._hook_cache[v][1]}

    def forget_webhooks(self, venue: str) -> None:
        """A webhook of `venue` was made or deleted on this node: read them again."""
        self._hook_cache.pop(venue, None)

    async def _line_tops(
        self,
        by_queue: dict[str, list[StreamEvent]],
        metas: dict[str, dict[str, str] | None],
        enabled: dict[str, set[str]],
    ) -> dict[str, list[int]]:
        """The first `notify_ahead` waiting numbers of each queue whose line may have moved."""
        wanted: list[tuple[str, int]] = []
        for queue, queued in by_queue.items():
            meta = metas[queue]
            if meta is None:
                continue
            ahead = int(settings_view(meta)["notify_ahead"])
            if ahead <= 0 or not enabled[queue]:  # no "almost" to plan on this node
                continue
            if any(_may_move_top(e, ahead) for e in queued):
                wanted.append((queue, ahead))
        if not wanted:
            return {}
        pipe = self.store.redis.pipeline(transaction=False)
        for queue, ahead in wanted:
            pipe.zrange(self.store.keys(queue).line, 0, ahead - 1)
        try:
            replies = await pipe.execute()
        except Exception as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return {
            queue: [int(n) for n in reply]
            for (queue, _), reply in zip(wanted, replies, strict=True)
        }

    def _enabled(self, meta: dict[str, str]) -> set[str]:
        wanted = settings_view(meta)["channels"]
        return {c for c in CHANNELS if wanted.get(c) and c in self.channels}

    async def _plan_queue(
        self,
        writer: PlanWriter,
        queue: str,
        events: Sequence[StreamEvent],
        meta: dict[str, str] | None,
        hooks: dict[str, list[Hook]],
        top: list[int],
        enabled: set[str],
        earlier_held: bool,
    ) -> int:
        planned: list[Planned] = []
        venue_hooks = hooks.get(meta.get("venue", "") if meta else "", [])
        for event in events:
            planned.extend(plan_webhooks(event, venue_hooks))
        name = (meta or {}).get("name") or queue
        link = _queue_link(self.public_url, queue)
        calls = [e for e in events if e.kind in CALLS and e.ticket is not None]
        if calls and enabled:
            reach = {
                r.number: r
                for r in await writer.take_for_turn(queue, [e.ticket or 0 for e in calls])
            }
            for event in calls:
                found = reach.get(event.ticket or 0)
                if found is None:
                    continue
                counter = event.data.get("counter")
                message = notice_message(
                    "turn",
                    queue,
                    name,
                    found.number,
                    None if counter is None else str(counter),
                    link,
                )
                planned.extend(
                    plan_notice(
                        "turn",
                        queue,
                        event.seq,
                        _only(found, enabled),
                        message,
                        f"{event.epoch}:{event.seq}",
                    )
                )
        if top and enabled:
            seq = events[-1].seq
            for found in await writer.take_for_almost(queue, top):
                message = notice_message("almost", queue, name, found.number, None, link)
                planned.extend(
                    plan_notice("almost", queue, seq, _only(found, enabled), message, "once")
                )
        finished = [n for e in events if e.kind in FINISHES for n in ticket_numbers(e)]
        if finished:
            await writer.finish(queue, finished, at_once=not earlier_held)
        for event in events:
            if event.kind == "transferred" and event.ticket is not None:
                to_queue, to_number = event.data.get("to_queue"), event.data.get("to_ticket")
                if isinstance(to_queue, str) and str(to_number).isdigit():
                    await writer.move(queue, event.ticket, to_queue, int(str(to_number)))
        await writer.record(planned)
        return len(planned)

    async def contact_given(self, queue: str, number: int, position: int | None, seq: int) -> None:
        """A contact was just written for a ticket at `position` (as of `seq`): if it is already
        within `notify_ahead`, its "almost" is planned now, since no later event may move the
        line before its call (the planner may have handled the join before the contact was
        there)."""
        meta = await self.store.queue_meta(queue)
        if meta is None or position is None:
            return
        if position > int(settings_view(meta)["notify_ahead"]):
            return
        enabled = self._enabled(meta)
        if not enabled:
            return
        link = _queue_link(self.public_url, queue)
        name = meta.get("name") or queue
        async with self.deliveries.planning() as writer:
            planned: list[Planned] = []
            for found in await writer.take_for_almost(queue, [number]):
                message = notice_message("almost", queue, name, found.number, None, link)
                planned.extend(
                    plan_notice("almost", queue, seq, _only(found, enabled), message, "once")
                )
            await writer.record(planned)
        if planned:
            self._wake.set()

    # -- sending --------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        backoff = 0.05
        while not self._stopping:
            self._wake.clear()
            free = self.concurrency - len(self._inflight)
            claimed: list[Due] = []
            if free > 0:
                try:
                    claimed = await self.deliveries.claim(self.consumer, free, self.lease_s)
                    backoff = 0.05
                except Unavailable as exc:
                    if backoff == 0.05:
                        log.warning("notifier cannot lease deliveries: %s", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("leasing deliveries failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
            for due in claimed:
                task = asyncio.get_running_loop().create_task(self._attempt(due))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)  # more may be due: claim again at once
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)
                await asyncio.sleep(COALESCE_S)

    async def _attempt(self, due: Due) -> None:
        channel = self.channels.get(due.channel)
        started = time.monotonic()
        if channel is None:
            sent = Sent("retry", f"no {due.channel} channel on this node")
        else:
            try:
                sent = await asyncio.wait_for(channel.send(due), ATTEMPT_LIMIT_S)
            except TimeoutError:
                sent = Sent("retry", "timed out")
            except Exception as exc:
                log.exception("sending delivery %s (%s) failed", due.id, due.channel)
                sent = Sent("retry", f"internal error: {type(exc).__name__}")
        ms = int((time.monotonic() - started) * 1000)
        status, retry_in = self._next(due, sent)
        self.attempt_ms.append(ms)
        if sent.status == "delivered":
            self.sent += 1
            self.send_lags.append(int((time.time() - due.created_at.timestamp()) * 1000))
        else:
            self.failed_attempts += 1
            log.info(
                "delivery %s (%s %s) attempt %d: %s -> %s",
                due.id,
                due.channel,
                due.type,
                due.attempts + 1,
                sent.error,
                status,
            )
        for pause in (0.1, 0.5, 2.0, 5.0):
            try:
                await self.deliveries.settle(
                    due,
                    self.consumer,
                    ok=sent.status == "delivered",
                    error=sent.error,
                    ms=ms,
                    status=status,
                    retry_in_s=retry_in,
                )
                break
            except Unavailable:
                await asyncio.sleep(pause)  # else the lease runs out and it is attempted again
        self._wake.set()  # the next delivery of its chain may be due now

    def _next(self, due: Due, sent: Sent) -> tuple[str, float | None]:
        if sent.status == "delivered":
            return "delivered", None
        if sent.status == "dropped":
            return "dropped", None
        if sent.status == "failed":
            return "dead", None
        delay = retry_delay(self.retry_s, due.attempts + 1, random.random())
        if delay is None:
            return "dead", None
        return "pending", max(delay, sent.retry_after_s or 0.0)

    # -- housekeeping ---------------------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        next_purge = time.monotonic()
        while not self._stopping:
            try:
                self.counts = await self.deliveries.counts()
                queues = await self.streams.queues()
                if queues:
                    await self.streams.trim(queues)
                self.events_behind = await self.streams.lag(queues) if queues else 0
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + CONTACT_GRACE_S / 4
                    await self.deliveries.purge_contacts(CONTACT_GRACE_S)
                    await self.deliveries.purge_done(KEEP_DONE_S)
            except Unavailable as exc:
                log.debug("notifier housekeeping skipped: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING_S)


def _may_move_top(event: StreamEvent, ahead: int) -> bool:
    """Whether the first `ahead` of the line may have changed: not after a plain join at the
    tail of a longer line (most events of a busy queue)."""
    if event.kind not in LINE_MOVES:
        return False
    if event.kind == "joined" and not event.data.get("priority"):
        return int(event.data.get("waiting", 0)) <= ahead
    return True


def _p99(samples: deque[int]) -> int | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _only(reach: Reach, enabled: set[str]) -> Reach:
    """The contact on the channels the queue enables (and this node sends)."""
    return Reach(
        reach.number,
        reach.email if "email" in enabled else None,
        reach.phone if "sms" in enabled else None,
        reach.push if "push" in enabled else None,
    )
