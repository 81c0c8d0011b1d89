"""Ticket contacts in PostgreSQL (`ticket_contacts`): written by the contact routes, read and
deleted by the notifier. Never copied into the Redis stream or the event log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from server.db.core import Database


@dataclass(frozen=True, slots=True)
class Contact:
    """The ways to reach one ticket's customer; at least one is set when stored."""

    email: str | None = None
    phone: str | None = None
    push: dict[str, Any] | None = None  # a PushSubscription: {"endpoint", "keys": {...}}

    @property
    def empty(self) -> bool:
        return self.email is None and self.phone is None and self.push is None

    def channels(self) -> list[str]:
        given = (("email", self.email), ("sms", self.phone), ("push", self.push))
        return [name for name, value in given if value is not None]


def contact_of(row: Any) -> Contact:
    push = row["push"]
    return Contact(row["email"], row["phone"], None if push is None else orjson.loads(push))


class ContactTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, queue: str, number: int, contact: Contact) -> None:
        """Replace the ticket's contacts; an empty contact deletes them."""
        if contact.empty:
            await self.delete(queue, number)
            return
        push = None if contact.push is None else orjson.dumps(contact.push).decode()
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO ticket_contacts (queue, number, email, phone, push)"
                " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (queue, number) DO UPDATE"
                " SET email = $3, phone = $4, push = $5::jsonb, updated_at = now()",
                queue,
                number,
                contact.email,
                contact.phone,
                push,
            )

    async def delete(self, queue: str, number: int) -> None:
        await self.delete_many(queue, [number])

    async def delete_many(self, queue: str, numbers: Sequence[int]) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM ticket_contacts WHERE queue = $1 AND number = ANY($2::bigint[])",
                queue,
                list(numbers),
            )

    async def get(self, queue: str, number: int) -> Contact | None:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT email, phone, push::text AS push FROM ticket_contacts"
                " WHERE queue = $1 AND number = $2",
                queue,
                number,
            )
        return None if row is None else contact_of(row)

    async def move(self, queue: str, number: int, to_queue: str, to_number: int) -> None:
        """A transfer: the contacts follow the ticket to its new queue and number."""
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE ticket_contacts SET queue = $3, number = $4, almost_planned = false,"
                " updated_at = now() WHERE queue = $1 AND number = $2"
                " AND NOT EXISTS (SELECT 1 FROM ticket_contacts WHERE queue = $3 AND number = $4)",
                queue,
                number,
                to_queue,
                to_number,
            )
