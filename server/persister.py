"""The persister: every queue event from the Redis streams into PostgreSQL, exactly once in effect.

Every node runs one, all in one consumer group per stream (architecture.md inv. 6). A batch is
written in one transaction that skips rows already there, then acknowledged, and the streams
are trimmed below what is still unacknowledged: an event leaves Redis only once PostgreSQL has
it, and a batch redelivered after a crash between commit and acknowledgement adds nothing.
Entries a dead node held are claimed by the others once idle for `claim_idle_ms`.

PostgreSQL down: the batch in hand is retried with backoff, nothing more is read, the events
wait in Redis, and `status()` says how far behind persistence is. The live queue never waits on
any of this. Alongside, the persister keeps the housekeeping that needs both stores: the
periodic check that rebuilds queues Redis lost (`server.recovery`), and the first wait estimate
each ticket was quoted (`QuoteBook`), written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from server.db import Database
from server.db.events import EventLog, Quote
from server.errors import Unavailable
from server.events import StreamEvent
from server.recovery import Recovery
from server.store import Store
from server.store.events import Backlog, EventStreams
from server.tasks import cancel_all

log = logging.getLogger(__name__)

INSERT_CHUNK = 5000  # rows per transaction when a claim or a read returns more
MAX_BACKOFF_S = 2.0  # short: once PostgreSQL is back the backlog should drain at once
PRUNE_EVERY_S = 600.0
PRUNE_IDLE_MS = 3600 * 1000
LAG_SAMPLES = 20_000


class PersisterKilled(Exception):
    """Raised by `crash_after_commit`: the loop dies as a killed process would."""


class QuoteBook:
    """The first wait estimate each ticket was shown, kept until the persister writes it."""

    MAX_PENDING = 50_000
    MAX_SEEN = 200_000

    def __init__(self) -> None:
        self._seen: set[tuple[str, int]] = set()
        self._pending: list[Quote] = []

    def record(self, queue: str, number: int, position: int, eta_s: int) -> None:
        """Called by the fan-out for each estimate it sends; cheap after the first per ticket."""
        key = (queue, number)
        if key in self._seen:
            return
        if len(self._seen) >= self.MAX_SEEN:
            self._seen.clear()  # a ticket seen again writes a duplicate the table ignores
        self._seen.add(key)
        if len(self._pending) < self.MAX_PENDING:
            self._pending.append(Quote(queue, number, int(time.time() * 1000), position, eta_s))

    def take(self) -> list[Quote]:
        taken, self._pending = self._pending, []
        return taken

    def give_back(self, quotes: list[Quote]) -> None:
        self._pending = (quotes + self._pending)[: self.MAX_PENDING]


def _percentile(samples: Sequence[int], q: float) -> int | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Persister:
    def __init__(
        self,
        store: Store,
        db: Database,
        recovery: Recovery | None = None,
        *,
        batch: int = 500,
        consumer: str | None = None,
        claim_idle_ms: int = 10_000,
        block_ms: int = 500,
        refresh_s: float = 1.0,
        check_s: float = 2.0,
        companions: Sequence[str] = (),
    ) -> None:
        # `companions`: the other groups reading the streams (the notifier's), created with ours.
        self.streams = EventStreams(store, companions=companions)
        self.log = EventLog(db)
        self.recovery = recovery
        self.quotes = QuoteBook()
        self.batch = batch
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.refresh_s = refresh_s
        self.check_s = check_s
        self.crash_after_commit = False  # tests: die between commit and XACK
        # Figures for /readyz, the metrics and the benchmark.
        self.committed = 0  # rows this node inserted
        self.written = 0  # events this node committed (inserted or already there)
        self.conflicts = 0
        self.postgres_ok = True
        self.backlog = Backlog(0, None)
        self.lags_ms: deque[int] = deque(maxlen=LAG_SAMPLES)
        self._held: list[StreamEvent] = []
        self._queues: list[str] = []
        self._down_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._redis_back = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._persist_loop(), name="persister"),
            loop.create_task(self._housekeeping_loop(), name="persister-housekeeping"),
        ]
        log.info("persister %s started", self.consumer)

    async def stop(self) -> None:
        self._stopping = True  # the loops check it too, should a cancel be lost
        await cancel_all(self._tasks)
        self._tasks = []
        try:  # best effort: these are statistics, and shutdown must not hang on PostgreSQL
            await asyncio.wait_for(self._flush_quotes(), 2.0)
        except Exception as exc:
            log.info("wait estimates not recorded at stop: %r", exc)

    @property
    def alive(self) -> bool:
        return bool(self._tasks) and not self._tasks[0].done()

    def status(self) -> dict[str, Any]:
        """How far behind persistence is, for /readyz and the metrics."""
        now_ms = int(time.time() * 1000)
        oldest = self.backlog.oldest_ms
        if self._held:
            held_oldest = min(e.at_ms for e in self._held)
            oldest = held_oldest if oldest is None else min(oldest, held_oldest)
        recent = list(self.lags_ms)[-2000:]
        return {
            "postgres_ok": self.postgres_ok,
            "backlog_events": max(self.backlog.entries, len(self._held)),
            "backlog_age_s": None if oldest is None else round(max(0, now_ms - oldest) / 1000, 3),
            "held_events": len(self._held),
            "committed_events": self.committed,
            "lag_p50_ms": _percentile(recent, 0.5),
            "lag_p99_ms": _percentile(recent, 0.99),
            "conflicts": self.conflicts,
        }

    # -- the persist loop -----------------------------------------------------------------------

    async def _persist_loop(self) -> None:
        backoff = 0.05
        next_refresh = next_claim = 0.0
        claim_every_s = max(0.1, min(5.0, self.claim_idle_ms / 2000))
        while not self._stopping:
            try:
                now = time.monotonic()
                if now >= next_refresh:
                    self._queues = await self.streams.live_queues()
                    next_refresh = now + self.refresh_s
                if not self._queues:
                    await asyncio.sleep(min(0.2, self.refresh_s))
                    continue
                if now >= next_claim:
                    next_claim = now + claim_every_s
                    claimed = await self.streams.claim(
                        self.consumer, self._queues, self.claim_idle_ms, self.batch
                    )
                    if claimed:
                        log.info("claimed %d events left pending by another node", len(claimed))
                        await self._commit(claimed)
                events = await self.streams.read(
                    self.consumer, self._queues, self.batch, self.block_ms
                )
                await self._commit(events)
                if backoff > 0.05:
                    log.info("persister reaches Redis again")
                    self._redis_back.set()  # check at once whether Redis came back without data
                backoff = 0.05
            except Unavailable as exc:  # Redis: the events are safe there, wait for it
                if backoff == 0.05:
                    log.warning("persister cannot reach Redis: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except (asyncio.CancelledError, PersisterKilled):
                raise
            except Exception:
                log.exception("persister loop failed; retrying")
                await asyncio.sleep(1.0)

    async def _commit(self, events: list[StreamEvent]) -> None:
        """Insert, then acknowledge; PostgreSQL failures are retried here until it accepts."""
        malformed = self.streams.take_malformed()
        if malformed:
            await self.streams.ack(malformed)  # they can never be rows: do not block the stream
        for i in range(0, len(events), INSERT_CHUNK):
            chunk = events[i : i + INSERT_CHUNK]
            self._held = chunk
            await self._insert(chunk)
            if self.crash_after_commit:
                raise PersisterKilled("simulated crash between commit and acknowledgement")
            await self.streams.ack((e.queue, e.entry_id) for e in chunk)
            self._held = []

    async def _insert(self, chunk: list[StreamEvent]) -> None:
        backoff = 0.1
        while True:
            if self._stopping:  # leave the batch pending: another node (or our restart) claims it
                raise asyncio.CancelledError
            try:
                result = await self.log.insert(chunk)
                break
            except Unavailable as exc:
                self._postgres_down(exc, len(chunk))
            except Exception:
                log.exception("writing %d events failed; retrying", len(chunk))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._postgres_up()
        now_ms = int(time.time() * 1000)
        self.lags_ms.extend(now_ms - e.at_ms for e in chunk)
        self.committed += result.inserted
        self.written += len(chunk)
        if result.conflicts:
            # Same (queue, seq) with other content: Redis lost writes PostgreSQL already had and
            # reused their seqs before the recovery check caught it. The first row stays.
            self.conflicts += len(result.conflicts)
            log.error("events conflicting with the log were not stored: %s", result.conflicts[:10])

    def _postgres_down(self, exc: Exception, held: int) -> None:
        self.postgres_ok = False
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("postgres unreachable (%s): %d events wait in Redis", exc, held)

    def _postgres_up(self) -> None:
        self.postgres_ok = True
        if self._down_since is not None:
            log.info("postgres back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None

    # -- housekeeping ---------------------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        next_check = next_prune = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            try:
                await self._measure()
                await self._flush_quotes()
                if self.recovery is not None and now >= next_check:
                    next_check = now + self.check_s
                    await self.recovery.check()
                if now >= next_prune and self._queues:
                    next_prune = now + PRUNE_EVERY_S
                    await self.streams.prune_consumers(self._queues, PRUNE_IDLE_MS)
            except Unavailable as exc:
                log.debug("housekeeping skipped: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("persister housekeeping failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._redis_back.wait(), self.refresh_s)
            if self._redis_back.is_set():
                self._redis_back.clear()
                next_check = 0.0

    async def _measure(self) -> None:
        """Trim what every group has acknowledged, then count what this group has not: the
        backlog."""
        queues = await self.streams.queues()  # fresh: the persist loop may be stuck retrying
        if not queues:
            self.backlog = Backlog(0, None)
            return
        await self.streams.trim(queues)
        self.backlog = await self.streams.backlog(queues)

    async def _flush_quotes(self) -> None:
        quotes = self.quotes.take()
        if not quotes:
            return
        try:
            await self.log.save_quotes(quotes)
        except Exception:
            self.quotes.give_back(quotes)
            raise
