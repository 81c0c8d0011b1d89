"""Who may do what: ticket tokens for customers, venue-scoped staff keys for staff."""

from __future__ import annotations

from starlette.requests import Request

from protocol.names import is_slug, parse_ticket_id
from server.acting import act_as
from server.auth import (
    StaffIdentity,
    TicketClaim,
    bearer,
    hash_key,
    key_matches,
    parse_staff_key,
)
from server.db.keys import KeyTable
from server.errors import ApiError, Unavailable
from server.services import Services
from server.store import KeyRing


def ticket_claim(request: Request, svc: Services, ticket_id: str) -> TicketClaim:
    """The caller's claim on `ticket_id`; 401 for a missing, forged or other ticket's token."""
    token = bearer(request.headers.get("authorization"))
    claim = None if token is None else svc.signer.verify(token)
    if claim is None or claim.ticket_id != ticket_id:
        raise ApiError.from_code("unauthorized", "a valid ticket token for this ticket is required")
    return claim


async def live_ticket_claim(request: Request, svc: Services, ticket_id: str) -> TicketClaim:
    """`ticket_claim`, with an old SHA-1 token held to its ticket being old and unfinished."""
    claim = ticket_claim(request, svc, ticket_id)
    if claim.legacy:
        view = await svc.store.ticket(claim.queue, claim.number)
        if view is None or not svc.signer.legacy_allowed(view.joined_ms, view.status):
            raise ApiError.from_code("unauthorized", "this token has expired")
    return claim


async def staff_venue(request: Request, svc: Services) -> str:
    """The venue id of the staff key in the request; 401 when missing or wrong."""
    return (await staff_identity(request, svc)).venue_id


async def admin_identity(request: Request, svc: Services) -> StaffIdentity:
    """The caller's identity if its key is an admin key; 403 for a staff key."""
    identity = await staff_identity(request, svc)
    if not identity.admin:
        raise ApiError.from_code("forbidden", "this needs an admin key")
    return identity


async def staff_identity(request: Request, svc: Services) -> StaffIdentity:
    """Who the staff key in the request speaks for; 401 when missing, wrong or revoked. The
    key becomes the request's acting key: the events its changes record name it."""
    identity = await key_identity(svc, bearer(request.headers.get("authorization")))
    act_as(identity.key_id)
    return identity


async def key_identity(svc: Services, key: str | None) -> StaffIdentity:
    """Who a staff key speaks for (an HTTP header, or a `watch_queue` message); 401 when
    missing, wrong or revoked."""
    key_id = None if key is None else parse_staff_key(key)
    if key is None or key_id is None:
        raise ApiError.from_code("unauthorized", "a valid staff key is required")
    digest = hash_key(key)
    cached = svc.keys.get(digest)  # a revocation evicts it on every node
    if cached is not None:
        return cached
    try:
        row = await KeyTable(svc.db).live(key_id)
    except Unavailable:
        # PostgreSQL down: a key verified recently still works, so the live queue keeps going,
        # unless Redis knows it was revoked (the eviction may have been missed).
        cached = svc.keys.get(digest, stale=True)
        if await KeyRing(svc.store).revoked(key_id):
            raise ApiError.from_code("unauthorized", "this key was revoked") from None
        if cached is None:
            raise
        return cached
    if row is None or not key_matches(key, row.key_hash):
        raise ApiError.from_code("unauthorized", "a valid staff key is required")
    identity = StaffIdentity(row.venue_id, row.key_id, row.role)
    svc.keys.put(digest, identity)
    return identity


async def owned_queue(svc: Services, queue: str, venue_id: str) -> None:
    """404 for an unknown queue, 403 for another venue's queue."""
    require_owner(await queue_owner(svc, queue), venue_id)


async def queue_owner(svc: Services, queue: str) -> str | None:
    """The venue id owning `queue` (this node's memory, then Redis, then PostgreSQL), or None
    when there is none."""
    if not is_slug(queue):
        return None
    owner = svc.owners.get(queue)
    if owner is not None:
        return owner
    meta = await svc.store.queue_meta(queue)
    owner = meta.get("venue") if meta is not None else None
    if owner is None:
        row = await svc.db.queue(queue)
        owner = None if row is None else row.venue_id
    if owner is not None:
        svc.owners.put(queue, owner)
    return owner


def require_owner(owner: str | None, venue_id: str) -> None:
    """404 when the queue has no owner (it does not exist), 403 when it is another venue's."""
    if owner is None:
        raise ApiError.from_code("queue_not_found")
    if owner != venue_id:
        raise ApiError.from_code("forbidden", "this queue belongs to another venue")


def parse_ticket(ticket_id: str) -> tuple[str, int]:
    parsed = parse_ticket_id(ticket_id)
    if parsed is None:
        raise ApiError.from_code("ticket_not_found")
    return parsed


async def owned_ticket(request: Request, svc: Services) -> tuple[str, str, int]:
    """(venue, queue, number) of the path's ticket, whose queue the staff key's venue owns;
    404 `ticket_not_found` for an unknown or malformed ticket id."""
    venue = await staff_venue(request, svc)
    queue, number = parse_ticket(request.path_params["ticket_id"])
    try:
        await owned_queue(svc, queue, venue)
    except ApiError as exc:
        if exc.code == "queue_not_found":
            raise ApiError.from_code("ticket_not_found") from None
        raise
    return venue, queue, number
