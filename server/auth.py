"""Ticket tokens and staff keys.

A ticket token is the ticket id and a per-ticket nonce, signed with the server's secret
(itsdangerous, HMAC-SHA256): it cannot be forged, and cannot be moved to another ticket because
the nonce is checked against the one Redis holds. A staff key is `vqk_<id>_<secret>`; only its
SHA-256 is stored (the key is 256 random bits, so a slow password hash would add nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from protocol.names import parse_ticket_id

STAFF_KEY_RE = re.compile(r"vqk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class TicketClaim:
    queue: str
    number: int
    ticket_id: str
    nonce: str


class TicketSigner:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt="vqueue.ticket.v1")

    def sign(self, ticket_id: str, nonce: str) -> str:
        token: str = self._serializer.dumps([ticket_id, nonce])
        return token

    def verify(self, token: str) -> TicketClaim | None:
        if not token or len(token) > 1024:
            return None
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            return None
        if (
            not isinstance(payload, list)
            or len(payload) != 2
            or not all(isinstance(p, str) for p in payload)
        ):
            return None
        ticket_id, nonce = payload
        parsed = parse_ticket_id(ticket_id)
        if parsed is None:
            return None
        return TicketClaim(parsed[0], parsed[1], ticket_id, nonce)


def new_staff_key() -> tuple[str, str, bytes]:
    """A fresh key: (key id, the whole key to show once, its hash to store)."""
    key_id = secrets.token_hex(8)
    key = f"vqk_{key_id}_{secrets.token_urlsafe(32)}"
    return key_id, key, hash_key(key)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_staff_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = STAFF_KEY_RE.fullmatch(key)
    return None if match is None else match.group(1)


def key_matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def bearer(header: str | None) -> str | None:
    """The credential of an `Authorization: Bearer ...` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class KeyCache:
    """Recently verified staff keys, so staff calls keep working while PostgreSQL is down."""

    def __init__(self, ttl_s: float = 60.0, stale_ok_s: float = 24 * 3600.0) -> None:
        self.ttl_s = ttl_s
        self.stale_ok_s = stale_ok_s
        self._entries: dict[bytes, tuple[str, float]] = {}

    def get(self, key_hash: bytes, *, stale: bool = False) -> str | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        venue_id, at = entry
        age = time.monotonic() - at
        if age <= self.ttl_s or (stale and age <= self.stale_ok_s):
            return venue_id
        return None

    def put(self, key_hash: bytes, venue_id: str) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (venue_id, time.monotonic())
