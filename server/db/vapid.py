"""The deployment's VAPID private key in PostgreSQL: one row, the first node's key wins."""

from __future__ import annotations

from server.db.core import Database


async def keep_vapid_key(db: Database, candidate: bytes) -> bytes:
    """Store `candidate` unless a key is stored already; return the stored key. Nodes starting
    at once each offer their own candidate and all end with the one that was inserted first."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO vapid_key (id, private_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            candidate,
        )
        stored: bytes = await conn.fetchval("SELECT private_key FROM vapid_key WHERE id = 1")
    return bytes(stored)
