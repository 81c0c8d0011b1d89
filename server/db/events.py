"""PostgreSQL side of the event log: idempotent batch writes, reads, statistics, replay.

`queue_events` has one row per (queue, seq). The persister writes a batch with COPY into a
temporary table and one `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, so a redelivered batch
adds nothing (COPY alone cannot skip duplicates). Times are kept as timestamptz and cross this
module as integer milliseconds, converted exactly (no float rounding).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from protocol.ticket import MAX_CALL_INTERVAL_S
from server.db.core import CONNECTION_ERRORS, Database
from server.errors import Unavailable
from server.events import QueueEvent

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
COLUMNS = ("queue", "seq", "type", "ticket", "at", "epoch", "data")
# Errors that mean "PostgreSQL is unreachable or going away", not "this query is wrong".

# Each queue with the highest seq logged for it (an index probe per queue).
HEADS = (
    "SELECT q.slug, q.venue_id::text AS venue_id, q.name,"
    " (SELECT max(e.seq) FROM queue_events e WHERE e.queue = q.slug) AS seq FROM queues q"
)
BATCH_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS persist_batch ("
    " queue text, seq bigint, type text, ticket bigint, at timestamptz, epoch text, data jsonb"
    ") ON COMMIT DELETE ROWS"
)
INSERT_BATCH = (
    "INSERT INTO queue_events (queue, seq, type, ticket, at, epoch, data)"
    " SELECT queue, seq, type, ticket, at, epoch, data FROM persist_batch"
    " ON CONFLICT (queue, seq) DO NOTHING"
)
CONFLICTS = (
    "SELECT b.queue, b.seq FROM persist_batch b JOIN queue_events e USING (queue, seq)"
    " WHERE (e.type, e.ticket, e.at, e.epoch) IS DISTINCT FROM (b.type, b.ticket, b.at, b.epoch)"
)


def to_time(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def to_ms(at: datetime) -> int:
    return (at - EPOCH) // MS


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    kind: str
    ticket: int | None
    at_ms: int
    epoch: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InsertResult:
    inserted: int
    conflicts: list[tuple[str, int]]  # same (queue, seq) already there with other content


@dataclass(frozen=True, slots=True)
class QueueHead:
    """A queue PostgreSQL knows, with the last seq it has of it (None: no events yet)."""

    slug: str
    venue_id: str
    name: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class Quote:
    queue: str
    ticket: int
    quoted_ms: int
    position: int
    eta_s: int


def _logged(row: asyncpg.Record) -> LoggedEvent:
    return LoggedEvent(
        seq=row["seq"],
        kind=row["type"],
        ticket=row["ticket"],
        at_ms=to_ms(row["at"]),
        epoch=row["epoch"],
        data=orjson.loads(row["data"]),
    )


class EventLog:
    """Reads and writes of `queue_events` (and `eta_quotes`) through the node's pool."""

    def __init__(self, db: Database) -> None:
        self.pool = db.pool
        self._connection = db.connection

    async def insert(self, events: Sequence[QueueEvent]) -> InsertResult:
        """Write a batch in one transaction; rows already there are skipped."""
        records = [
            (
                e.queue,
                e.seq,
                e.kind,
                e.ticket,
                to_time(e.at_ms),
                e.epoch,
                orjson.dumps(e.data).decode(),
            )
            for e in events
        ]
        async with self._connection() as conn, conn.transaction():
            await conn.execute(BATCH_TABLE)
            await conn.copy_records_to_table("persist_batch", records=records, columns=COLUMNS)
            status = await conn.execute(INSERT_BATCH)
            inserted = int(status.rsplit(" ", 1)[1])
            conflicts: list[tuple[str, int]] = []
            if inserted < len(records):
                conflicts = [(r["queue"], r["seq"]) for r in await conn.fetch(CONFLICTS)]
        return InsertResult(inserted, conflicts)

    async def page(self, queue: str, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Up to `limit` events of the queue with seq > after_seq, in seq order."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT seq, type, ticket, at, epoch, data FROM queue_events"
                " WHERE queue = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                queue,
                after_seq,
                limit,
            )
        return [_logged(r) for r in rows]

    async def replay(self, queue: str, chunk: int = 5000) -> AsyncIterator[LoggedEvent]:
        """Every event of the queue in seq order, streamed through a cursor."""
        try:
            async with self.pool.acquire(timeout=5) as conn, conn.transaction(readonly=True):
                cursor = conn.cursor(
                    "SELECT seq, type, ticket, at, epoch, data FROM queue_events"
                    " WHERE queue = $1 ORDER BY seq",
                    queue,
                    prefetch=chunk,
                )
                async for row in cursor:
                    yield _logged(row)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"postgres: {exc!r}") from exc

    async def heads(self) -> list[QueueHead]:
        """Every queue with the highest seq logged for it (an index probe per queue)."""
        async with self._connection() as conn:
            rows = await conn.fetch(HEADS + " ORDER BY q.slug")
        return [QueueHead(r["slug"], r["venue_id"], r["name"], r["seq"]) for r in rows]

    async def head(self, queue: str) -> QueueHead | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(HEADS + " WHERE q.slug = $1", queue)
        return (
            None
            if row is None
            else QueueHead(row["slug"], row["venue_id"], row["name"], row["seq"])
        )

    async def eta_history(self, queue: str, calls: int) -> list[tuple[str, int]]:
        """The queue's last `calls` calls with the state changes among them, oldest first, as
        (type, ms): the wait estimate skips paused and closed time."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT type, at FROM queue_events WHERE queue = $1 AND seq >= coalesce(("
                " SELECT min(seq) FROM (SELECT seq FROM queue_events WHERE queue = $1"
                " AND type = 'called' ORDER BY seq DESC LIMIT $2) c), 0)"
                " AND type IN ('called', 'paused', 'resumed', 'closed', 'opened')"
                " ORDER BY seq",
                queue,
                calls,
            )
        return [(r["type"], to_ms(r["at"])) for r in rows]

    async def save_quotes(self, quotes: Sequence[Quote]) -> None:
        """Record first wait estimates; a ticket already quoted keeps its first row."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO eta_quotes (queue, ticket, quoted_at, position, eta_s)"
                " SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[],"
                " $4::int[], $5::int[]) ON CONFLICT DO NOTHING",
                [q.queue for q in quotes],
                [q.ticket for q in quotes],
                [to_time(q.quoted_ms) for q in quotes],
                [q.position for q in quotes],
                [q.eta_s for q in quotes],
            )

    async def stats(self, queue: str, since_ms: int, until_ms: int) -> dict[str, Any]:
        """Counts, waits, service times, hourly throughput and estimate error in a window."""
        args = (queue, to_time(since_ms), to_time(until_ms))
        async with self._connection() as conn:
            hourly = await conn.fetch(STATS_HOURLY, *args)
            line = await conn.fetch(STATS_WAITING, *args)
            wait = await conn.fetchrow(STATS_WAIT, *args)
            service = await conn.fetchrow(STATS_SERVICE, *args)
            interval = await conn.fetchval(STATS_INTERVAL, *args)
            eta = await conn.fetchrow(STATS_ETA, *args)
        hours: dict[datetime, dict[str, int]] = {}
        for r in hourly:
            hours.setdefault(r["hour"].replace(tzinfo=UTC), {})[r["type"]] = r["n"]
        for r in line:
            hours.setdefault(r["hour"].replace(tzinfo=UTC), {})["waiting"] = r["waiting"]
        assert wait is not None and service is not None and eta is not None
        return {
            "hours": sorted(hours.items()),
            "wait_avg_s": wait["avg"],
            "wait_p90_s": wait["p90"],
            "service_avg_s": service["avg"],
            "call_interval_avg_s": interval,
            "eta": dict(eta),
        }


_WINDOW = "queue = $1 AND at >= $2 AND at < $3"
STATS_HOURLY = (
    # A bulk removal is one event naming many tickets (`numbers`): count the tickets.
    "SELECT date_trunc('hour', at AT TIME ZONE 'UTC') AS hour, type,"
    " sum(CASE WHEN data ? 'numbers'"
    "  THEN cardinality(string_to_array(data->>'numbers', ',')) ELSE 1 END)::int AS n"
    f" FROM queue_events WHERE {_WINDOW} GROUP BY 1, 2"
)
# The line's length after each hour's last event that logged it (for the day's plot).
STATS_WAITING = (
    "SELECT DISTINCT ON (1) date_trunc('hour', at AT TIME ZONE 'UTC') AS hour,"
    " (data->>'waiting')::int AS waiting"
    f" FROM queue_events WHERE {_WINDOW} AND data ? 'waiting' ORDER BY 1, seq DESC"
)
STATS_WAIT = (
    "SELECT avg(w)::float8 AS avg, percentile_cont(0.9) WITHIN GROUP (ORDER BY w) AS p90"
    " FROM (SELECT (data->>'waited_ms')::float8 / 1000 AS w FROM queue_events"
    f" WHERE {_WINDOW} AND type = 'called') s"
)
STATS_SERVICE = (
    "SELECT avg((data->>'service_ms')::float8 / 1000) AS avg FROM queue_events"
    f" WHERE {_WINDOW} AND type IN ('served', 'no_show')"
)
STATS_INTERVAL = (
    "SELECT avg(gap)::float8 FROM (SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY seq))"
    f" AS gap FROM queue_events WHERE {_WINDOW} AND type = 'called') s"
    f" WHERE gap IS NOT NULL AND gap <= {MAX_CALL_INTERVAL_S}"
)
STATS_ETA = (
    "SELECT count(*)::int AS samples, avg(err)::float8 AS mean, avg(abs(err))::float8 AS mean_abs,"
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY abs(err)) AS p90_abs"
    " FROM (SELECT extract(epoch FROM e.at - q.quoted_at)::float8 - q.eta_s AS err"
    " FROM eta_quotes q JOIN queue_events e"
    " ON e.queue = q.queue AND e.ticket = q.ticket AND e.type = 'called'"
    " WHERE e.queue = $1 AND e.at >= $2 AND e.at < $3) s"
)
