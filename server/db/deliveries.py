"""The notifier's tables: webhooks, deliveries (with leases) and their attempts.

A delivery is `pending` until it is `delivered`, `dead` (out of retries) or `dropped` (its
target is gone for good, like a push subscription the push service forgot). A node sends only
the deliveries it leased (`claim`): a lease outlives the longest attempt, so no two nodes
attempt one delivery at once, and one a dead node held is taken over when its lease runs out.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from server.db.contacts import MOVE
from server.db.core import Database
from server.notify.plan import Hook, Planned, Reach


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: str
    venue_id: str
    url: str
    events: list[str]
    secret: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Due:
    """A leased delivery, with what sending it needs."""

    id: str
    channel: str
    queue: str
    seq: int
    type: str
    attempts: int
    target: str | None
    payload: dict[str, Any]
    url: str | None  # webhook deliveries: the webhook's URL and secret
    secret: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeadRow:
    delivery_id: str
    type: str
    seq: int
    attempts: int
    last_error: str | None


def _uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        return None


def _webhook(row: Any) -> WebhookRow:
    return WebhookRow(
        str(row["id"]),
        str(row["venue_id"]),
        row["url"],
        list(row["events"]),
        row["secret"],
        row["created_at"],
    )


class WebhookTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, venue_id: str, url: str, events: Sequence[str], secret: str) -> str:
        webhook_id = str(uuid.uuid4())
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO webhooks (id, venue_id, url, events, secret)"
                " VALUES ($1, $2, $3, $4, $5)",
                webhook_id,
                venue_id,
                url,
                list(events),
                secret,
            )
        return webhook_id

    async def of_venue(self, venue_id: str) -> list[WebhookRow]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT * FROM webhooks WHERE venue_id = $1 ORDER BY created_at, id", venue_id
            )
        return [_webhook(r) for r in rows]

    async def get(self, venue_id: str, webhook_id: str) -> WebhookRow | None:
        found = _uuid(webhook_id)
        if found is None:
            return None
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM webhooks WHERE id = $1 AND venue_id = $2", found, venue_id
            )
        return None if row is None else _webhook(row)

    async def delete(self, venue_id: str, webhook_id: str) -> bool:
        found = _uuid(webhook_id)
        if found is None:
            return False
        async with self.db.connection() as conn:
            done = await conn.execute(
                "DELETE FROM webhooks WHERE id = $1 AND venue_id = $2", found, venue_id
            )
        return bool(done != "DELETE 0")

    async def hooks_of(self, venue_ids: Sequence[str]) -> dict[str, list[Hook]]:
        """Every webhook of these venues, for the planner."""
        ids = [v for v in (_uuid(v) for v in venue_ids) if v is not None]
        if not ids:
            return {}
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT id, venue_id, events FROM webhooks WHERE venue_id = ANY($1::uuid[])"
                " ORDER BY created_at, id",
                ids,
            )
        out: dict[str, list[Hook]] = {}
        for r in rows:
            hook = Hook(str(r["id"]), str(r["venue_id"]), frozenset(r["events"]))
            out.setdefault(hook.venue_id, []).append(hook)
        return out


CONTACT_RETURNING = "RETURNING number, email, phone, push::text AS push"


class PlanWriter:
    """One batch of planning, in one transaction: contacts taken, deliveries recorded."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def take_for_turn(self, queue: str, numbers: Sequence[int]) -> list[Reach]:
        """The contacts of called tickets; their "almost" is then never planned (it is late)."""
        return await self._take(queue, numbers, "")

    async def take_for_almost(self, queue: str, numbers: Sequence[int]) -> list[Reach]:
        """The contacts of these tickets not planned an "almost" yet, marked planned now."""
        return await self._take(queue, numbers, " AND NOT almost_planned AND finished_at IS NULL")

    async def _take(self, queue: str, numbers: Sequence[int], condition: str) -> list[Reach]:
        rows = await self.conn.fetch(
            "UPDATE ticket_contacts SET almost_planned = true"
            " WHERE queue = $1 AND number = ANY($2::bigint[])"
            + condition
            + " "
            + CONTACT_RETURNING,
            queue,
            list(numbers),
        )
        return [Reach(r["number"], r["email"], r["phone"], r["push"]) for r in rows]

    async def finish(self, queue: str, numbers: Sequence[int], *, at_once: bool) -> None:
        """These tickets ended: their contacts are deleted, or only marked when an earlier event
        of the queue may still need them (`purge_contacts` deletes them a little later)."""
        if at_once:
            await self.conn.execute(
                "DELETE FROM ticket_contacts WHERE queue = $1 AND number = ANY($2::bigint[])",
                queue,
                list(numbers),
            )
            return
        await self.conn.execute(
            "UPDATE ticket_contacts SET finished_at = now() WHERE queue = $1"
            " AND number = ANY($2::bigint[]) AND finished_at IS NULL",
            queue,
            list(numbers),
        )

    async def move(self, queue: str, number: int, to_queue: str, to_number: int) -> None:
        await self.conn.execute(MOVE, queue, number, to_queue, to_number)

    async def record(self, planned: Sequence[Planned]) -> None:
        if not planned:
            return
        columns = list(
            zip(
                *(
                    (
                        p.id,
                        p.channel,
                        p.webhook_id,
                        p.queue,
                        p.seq,
                        p.number,
                        p.type,
                        p.chain,
                        p.target,
                        orjson.dumps(p.payload).decode(),
                    )
                    for p in planned
                ),
                strict=True,
            )
        )
        await self.conn.execute(
            "INSERT INTO deliveries (id, channel, webhook_id, queue, seq, number, type, chain,"
            " target, payload) SELECT i, c, w, q, s, n, t, ch, tg, p::jsonb FROM unnest("
            "$1::text[], $2::text[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[],"
            " $7::text[], $8::text[], $9::text[], $10::text[]) AS x(i, c, w, q, s, n, t, ch, tg, p)"
            " ON CONFLICT (id) DO NOTHING",
            *(list(c) for c in columns),
        )


# A delivery may be attempted when it is due, not leased, and nothing before it in its chain
# holds it back: for notifications any earlier pending one (in order per ticket and channel);
# for a webhook's first attempt an earlier one not yet attempted (first attempts in seq order),
# while a retry waits for nothing.
CLAIM = """
WITH due AS (
    SELECT d.id FROM deliveries d
    WHERE d.status = 'pending' AND d.next_at <= now()
      AND (d.lease_until IS NULL OR d.lease_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.chain = d.chain AND e.status = 'pending' AND (e.seq, e.id) < (d.seq, d.id)
            AND (d.channel <> 'webhook' OR (d.attempts = 0 AND e.attempts = 0)))
    ORDER BY d.next_at, d.seq
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries x SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
FROM due
WHERE x.id = due.id
RETURNING x.id, x.channel, x.queue, x.seq, x.type, x.attempts, x.target, x.payload::text AS payload,
          (SELECT w.url FROM webhooks w WHERE w.id = x.webhook_id) AS url,
          (SELECT w.secret FROM webhooks w WHERE w.id = x.webhook_id) AS secret, x.created_at
"""


# One attempt's record and what follows (delivered, dead, dropped or retried later), in one
# statement: only the lease holder settles (a node that lost its lease records nothing).
SETTLE = """
WITH settled AS (
    UPDATE deliveries SET attempts = $2, status = $3, last_error = $4,
        next_at = now() + make_interval(secs => $5), lease_owner = NULL, lease_until = NULL,
        done_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END,
        target = CASE WHEN $3 = 'pending' THEN target END
    WHERE id = $1 AND lease_owner = $6
    RETURNING id
)
INSERT INTO delivery_attempts (delivery_id, n, node, ok, error, ms)
SELECT id, $2, $6, $7, $4, $8 FROM settled
ON CONFLICT DO NOTHING
"""


class DeliveryTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def planning(self) -> AsyncIterator[PlanWriter]:
        async with self.db.connection() as conn, conn.transaction():
            yield PlanWriter(conn)

    async def claim(self, owner: str, limit: int, lease_s: float) -> list[Due]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(CLAIM, limit, owner, float(lease_s))
        return [
            Due(
                r["id"],
                r["channel"],
                r["queue"],
                r["seq"],
                r["type"],
                r["attempts"],
                r["target"],
                orjson.loads(r["payload"]),
                r["url"],
                r["secret"],
                r["created_at"],
            )
            for r in sorted(rows, key=lambda r: (r["seq"], r["id"]))
        ]

    async def settle(
        self,
        due: Due,
        owner: str,
        *,
        ok: bool,
        error: str | None,
        ms: int,
        status: str,
        retry_in_s: float | None,
    ) -> None:
        """Record one attempt and what follows: delivered, dead, dropped or retried later."""
        attempt = due.attempts + 1
        async with self.db.connection() as conn:
            await conn.execute(
                SETTLE, due.id, attempt, status, error, float(retry_in_s or 0.0), owner, ok, ms
            )

    async def dead_of(self, webhook_id: str, limit: int = 1000) -> list[DeadRow]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT id, type, seq, attempts, last_error FROM deliveries"
                " WHERE webhook_id = $1 AND status = 'dead' ORDER BY seq, id LIMIT $2",
                webhook_id,
                limit,
            )
        return [DeadRow(r["id"], r["type"], r["seq"], r["attempts"], r["last_error"]) for r in rows]

    async def retry(self, webhook_id: str, delivery: str) -> bool:
        """A dead delivery of this webhook made due again (its attempts kept); False if none."""
        async with self.db.connection() as conn:
            done = await conn.execute(
                "UPDATE deliveries SET status = 'pending', next_at = now(), done_at = NULL"
                " WHERE id = $1 AND webhook_id = $2 AND status = 'dead'",
                delivery,
                webhook_id,
            )
        return bool(done != "UPDATE 0")

    async def counts(self) -> dict[str, int]:
        """Pending (the backlog) and dead deliveries."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT status, count(*) AS n FROM deliveries"
                " WHERE status IN ('pending', 'dead') GROUP BY status"
            )
        found = {r["status"]: int(r["n"]) for r in rows}
        return {"pending": found.get("pending", 0), "dead": found.get("dead", 0)}

    async def purge_done(self, keep_s: float) -> int:
        """Forget deliveries delivered or dropped more than `keep_s` ago (dead ones stay)."""
        async with self.db.connection() as conn:
            done = await conn.execute(
                "DELETE FROM deliveries WHERE status IN ('delivered', 'dropped')"
                " AND done_at < now() - make_interval(secs => $1)",
                float(keep_s),
            )
        return int(done.split()[-1])

    async def purge_contacts(self, grace_s: float) -> int:
        """Delete the contacts of tickets finished more than `grace_s` ago."""
        async with self.db.connection() as conn:
            done = await conn.execute(
                "DELETE FROM ticket_contacts WHERE finished_at < now() - make_interval(secs => $1)",
                float(grace_s),
            )
        return int(done.split()[-1])
