"""PostgreSQL: venues, staff keys, queue ownership, migrations."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from server.errors import Unavailable

log = logging.getLogger(__name__)

# Any 64-bit number, the same on every node: serialises concurrent migrations.
MIGRATION_LOCK_ID = 0x7671756575650001
# What "PostgreSQL is unreachable" looks like from asyncpg: answered as 503 / retried later.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    # A connection whose server died mid-query can fail its reset on release with this.
    asyncpg.InternalClientError,
)


@dataclass(frozen=True, slots=True)
class QueueRow:
    slug: str
    venue_id: str
    name: str
    archived: bool = False  # archived queues keep their slug, events and statistics


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped in the `migrations` package, in order."""
    folder = resources.files("migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text()) for name in names]


class Database:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, max_size: int = 10) -> Database:
        # No connection floor (min_size=0): asyncpg would restore it in the background and log a
        # traceback on every retry while PostgreSQL is down. One connection is opened at start.
        pool = await asyncpg.create_pool(
            dsn, min_size=0, init_size=1, max_size=max_size, command_timeout=10, timeout=5
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection; an unreachable PostgreSQL raises `Unavailable`."""
        try:
            async with self.pool.acquire(timeout=5) as conn:
                yield conn
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"the database is unreachable: {exc!r}") from exc

    async def _fetch(self, method: str, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await getattr(conn, method)(query, *args)

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet, each in its own transaction; return their names."""
        applied: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
                for name, sql in migration_files():
                    if name in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                    applied.append(name)
                    log.info("applied migration %s", name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
        return applied

    async def ping(self) -> bool:
        try:
            return bool(await self._fetch("fetchval", "SELECT 1") == 1)
        except Unavailable:
            return False

    # -- venues and keys ------------------------------------------------------------------------

    async def create_venue(self, name: str, key_id: str, key_hash: bytes) -> str:
        venue_id = str(uuid.uuid4())
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO venues (id, name) VALUES ($1, $2)", venue_id, name)
            await conn.execute(
                "INSERT INTO staff_keys (id, venue_id, key_hash, role)"
                " VALUES ($1, $2, $3, 'admin')",
                key_id,
                venue_id,
                key_hash,
            )
        return venue_id

    async def venue_by_name(self, name: str) -> str | None:
        row = await self._fetch("fetchval", "SELECT id::text FROM venues WHERE name = $1", name)
        return None if row is None else str(row)

    # -- queues ---------------------------------------------------------------------------------

    async def queue(self, slug: str) -> QueueRow | None:
        row = await self._fetch(
            "fetchrow",
            "SELECT slug, venue_id::text AS venue_id, name, archived_at IS NOT NULL AS archived"
            " FROM queues WHERE slug = $1",
            slug,
        )
        if row is None:
            return None
        return QueueRow(row["slug"], row["venue_id"], row["name"], row["archived"])

    async def venue_queues(self, venue_id: str) -> list[str]:
        """The venue's queues that are not archived, by slug."""
        rows = await self._fetch(
            "fetch",
            "SELECT slug FROM queues WHERE venue_id = $1 AND archived_at IS NULL ORDER BY slug",
            venue_id,
        )
        return [row["slug"] for row in rows]

    async def archive_queue(self, slug: str, venue_id: str) -> None:
        """Mark the venue's queue archived (once: a second call keeps the first time)."""
        await self._fetch(
            "execute",
            "UPDATE queues SET archived_at = coalesce(archived_at, now()), updated_at = now()"
            " WHERE slug = $1 AND venue_id = $2",
            slug,
            venue_id,
        )

    async def queue_slugs(self) -> set[str]:
        """Every queue's slug (a few bytes each; read whole so unknown slugs cost no query)."""
        rows = await self._fetch("fetch", "SELECT slug FROM queues")
        return {row["slug"] for row in rows}

    async def upsert_queue(self, slug: str, venue_id: str, name: str) -> QueueRow:
        """Create the queue or rename it; returns the row as stored (its owner may differ)."""
        row = await self._fetch(
            "fetchrow",
            "INSERT INTO queues (slug, venue_id, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, updated_at = now()"
            "   WHERE queues.venue_id = EXCLUDED.venue_id"
            " RETURNING slug, venue_id::text AS venue_id, name",
            slug,
            venue_id,
            name,
        )
        if row is None:  # the slug exists and belongs to another venue
            existing = await self.queue(slug)
            assert existing is not None
            return existing
        return QueueRow(row["slug"], row["venue_id"], row["name"])
