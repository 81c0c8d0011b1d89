"""Staff keys in PostgreSQL: create, list, look up and revoke, one venue's at a time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.db.core import Database
from server.errors import ApiError

ROLES = ("staff", "admin")
KEY_COLUMNS = (
    "id, venue_id::text AS venue_id, key_hash, role, label, created_at, last_used_at, revoked_at"
)


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    venue_id: str
    key_hash: bytes
    role: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def _row(row: Any) -> KeyRow:
    return KeyRow(
        row["id"],
        row["venue_id"],
        bytes(row["key_hash"]),
        row["role"],
        row["label"],
        row["created_at"],
        row["last_used_at"],
        row["revoked_at"] is not None,
    )


class KeyTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def live(self, key_id: str) -> KeyRow | None:
        """A key that is not revoked; marks it used (callers cache it, so this is rare)."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"UPDATE staff_keys SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL"
                f" RETURNING {KEY_COLUMNS}",
                key_id,
            )
        return None if row is None else _row(row)

    async def create(
        self, venue_id: str, key_id: str, key_hash: bytes, role: str, label: str
    ) -> KeyRow:
        try:
            uuid.UUID(venue_id)
        except ValueError:
            raise ApiError(404, "venue_not_found", "no such venue") from None
        try:
            async with self.db.connection() as conn:
                row = await conn.fetchrow(
                    "INSERT INTO staff_keys (id, venue_id, key_hash, role, label)"
                    f" VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}",
                    key_id,
                    venue_id,
                    key_hash,
                    role,
                    label,
                )
        except asyncpg.ForeignKeyViolationError:
            raise ApiError(404, "venue_not_found", "no such venue") from None
        return _row(row)

    async def of_venue(self, venue_id: str) -> list[KeyRow]:
        try:
            uuid.UUID(venue_id)
        except ValueError:
            return []
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {KEY_COLUMNS} FROM staff_keys WHERE venue_id = $1 AND revoked_at IS NULL"
                " ORDER BY created_at, id",
                venue_id,
            )
        return [_row(r) for r in rows]

    async def revoke(self, key_id: str, venue_id: str | None = None) -> KeyRow:
        """Revoke a live key (of `venue_id` when given): 404 if none, 409 for the last admin."""
        async with self.db.connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {KEY_COLUMNS} FROM staff_keys WHERE id = $1 AND revoked_at IS NULL",
                key_id,
            )
            if row is None or (venue_id is not None and row["venue_id"] != venue_id):
                raise ApiError(404, "key_not_found", "no such key")
            # Lock the venue's admin keys so that two revocations cannot remove the last two.
            admins = await conn.fetch(
                "SELECT id FROM staff_keys WHERE venue_id = $1 AND role = 'admin'"
                " AND revoked_at IS NULL FOR UPDATE",
                row["venue_id"],
            )
            if row["role"] == "admin" and len(admins) <= 1:
                raise ApiError(409, "last_admin_key", "a venue keeps at least one admin key")
            await conn.execute("UPDATE staff_keys SET revoked_at = now() WHERE id = $1", key_id)
        return _row(row)
