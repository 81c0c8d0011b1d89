"""Ticket tokens and staff keys.

A ticket token is the ticket id and a per-ticket nonce, signed with the server's secret
(itsdangerous' URL-safe format, HMAC-SHA256): it cannot be forged, and cannot be moved to another
ticket because the nonce is checked against the one Redis holds. Every join signs one and every
watch checks one, so the common shape is made and checked here with the derived key computed once
(itsdangerous derives it again on every call); its payload is never compressed. Anything else (a
compressed payload from an earlier version, a bad signature) goes to itsdangerous. Tokens signed by
earlier versions (HMAC-SHA1) verify as `legacy` claims, which the callers accept only for tickets
issued before the upgrade and not finished yet (`TicketSigner.legacy_allowed`). A staff key is
`vqk_<id>_<secret>`; only its SHA-256 is stored (the key is 256 random bits, so a slow password
hash would add nothing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import orjson
from itsdangerous import BadSignature, URLSafeSerializer

from protocol.names import parse_ticket_id

STAFF_KEY_RE = re.compile(r"vqk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
# Text that JSON writes the same whatever the encoder (printable ASCII but `"` and `\\`).
PLAIN_JSON_TEXT = re.compile(r"[ !#-\[\]-~]*")
TICKET_SALT = b"vqueue.ticket.v1"


@dataclass(frozen=True, slots=True)
class TicketClaim:
    queue: str
    number: int
    ticket_id: str
    nonce: str
    legacy: bool = False  # signed with HMAC-SHA1 before the upgrade


LIVE_STATUSES = ("waiting", "called")


class TicketSigner:
    def __init__(self, secret: str, sha256_since_ms: int | None = None) -> None:
        salt = TICKET_SALT.decode()
        sha256 = {"digest_method": hashlib.sha256}
        self._serializer = URLSafeSerializer(secret, salt=salt, signer_kwargs=sha256)
        self._legacy = URLSafeSerializer(secret, salt=salt)  # itsdangerous' default: SHA-1
        # itsdangerous' default key derivation ("django-concat"), done once.
        self._key = hashlib.sha256(TICKET_SALT + b"signer" + secret.encode()).digest()
        # When this deployment started signing with SHA-256 (kept in Redis, the same for every
        # node); None: no SHA-1 token is accepted at all.
        self.sha256_since_ms = sha256_since_ms

    def sign(self, ticket_id: str, nonce: str) -> str:
        if not (PLAIN_JSON_TEXT.fullmatch(ticket_id) and PLAIN_JSON_TEXT.fullmatch(nonce)):
            token: str = self._serializer.dumps([ticket_id, nonce])
            return token
        payload = _b64(orjson.dumps([ticket_id, nonce]))
        return (payload + b"." + self._signature(payload)).decode()

    def _signature(self, payload: bytes) -> bytes:
        return _b64(hmac.digest(self._key, payload, "sha256"))

    def _loads(self, token: str) -> object:
        """The payload of a SHA-256 token; BadSignature if it is not one."""
        payload, dot, signature = token.rpartition(".")
        if dot and payload and payload[0] != "." and token.isascii():
            raw = payload.encode()
            if hmac.compare_digest(self._signature(raw), signature.encode()):
                try:
                    return orjson.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
                except ValueError:  # signed by us, so never; but not a claim either
                    raise BadSignature("unreadable payload") from None
        return self._serializer.loads(token)

    def legacy_allowed(self, joined_ms: int, status: str) -> bool:
        """A SHA-1 token works only for a ticket issued before the upgrade, until it finishes."""
        since = self.sha256_since_ms
        return since is not None and joined_ms < since and status in LIVE_STATUSES

    def verify(self, token: str) -> TicketClaim | None:
        if not token or len(token) > 1024:
            return None
        legacy = False
        try:
            payload = self._loads(token)
        except BadSignature:
            try:
                payload = self._legacy.loads(token)
            except BadSignature:
                return None
            legacy = True
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
        return TicketClaim(parsed[0], parsed[1], ticket_id, nonce, legacy)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


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


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    """Who a verified staff key speaks for."""

    venue_id: str
    key_id: str
    role: str  # "staff" or "admin"

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class KeyCache:
    """Recently verified staff keys, so staff calls keep working while PostgreSQL is down.

    A revocation evicts its key on every node (pushed through Redis, see server.revocation);
    when that push may have been missed (pub/sub resubscribed), the whole cache is dropped.
    """

    def __init__(self, ttl_s: float = 60.0, stale_ok_s: float = 24 * 3600.0) -> None:
        self.ttl_s = ttl_s
        self.stale_ok_s = stale_ok_s
        self._entries: dict[bytes, tuple[StaffIdentity, float]] = {}

    def get(self, key_hash: bytes, *, stale: bool = False) -> StaffIdentity | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        identity, at = entry
        age = time.monotonic() - at
        if age <= self.ttl_s or (stale and age <= self.stale_ok_s):
            return identity
        return None

    def put(self, key_hash: bytes, identity: StaffIdentity) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (identity, time.monotonic())

    def evict(self, key_id: str) -> None:
        for digest, (identity, _) in list(self._entries.items()):
            if identity.key_id == key_id:
                del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()
