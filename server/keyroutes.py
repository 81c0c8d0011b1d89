"""Keys and the venue's queues: `/v1/keys` (admin) and `GET /v1/queues` (staff).

A revocation is written to PostgreSQL, then to Redis (a set every node checks while PostgreSQL
is down) and announced on Redis pub/sub, so every node drops the key from its cache at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.access import admin_identity, staff_venue
from server.auth import KeyCache, new_staff_key
from server.db.keys import ROLES, KeyRow, KeyTable
from server.errors import ApiError
from server.httpio import JSONResponse, optional_text, read_object
from server.queues import summary
from server.services import services
from server.store import KeyRing, Store

log = logging.getLogger(__name__)

MAX_LABEL_CHARS = 100


def key_json(row: KeyRow) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "label": row.label,
        "role": row.role,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
        "last_used_at": None
        if row.last_used_at is None
        else row.last_used_at.isoformat().replace("+00:00", "Z"),
    }


async def list_keys(request: Request) -> Response:
    svc = services(request)
    admin = await admin_identity(request, svc)
    rows = await KeyTable(svc.db).of_venue(admin.venue_id)
    return JSONResponse([key_json(r) for r in rows])


async def create_key(request: Request) -> Response:
    svc = services(request)
    admin = await admin_identity(request, svc)
    data = await read_object(request)
    label = optional_text(data, "label", MAX_LABEL_CHARS) or ""
    role = data.get("role", "staff")
    if role not in ROLES:
        raise ApiError(400, "invalid_body", "'role' must be 'staff' or 'admin'")
    key_id, key, digest = new_staff_key()
    row = await KeyTable(svc.db).create(admin.venue_id, key_id, digest, role, label)
    body = {"key_id": row.key_id, "staff_key": key, "label": row.label, "role": row.role}
    return JSONResponse(body, 201)


async def revoke_key(request: Request) -> Response:
    svc = services(request)
    admin = await admin_identity(request, svc)
    key_id = request.path_params["key_id"]
    row = await KeyTable(svc.db).revoke(key_id, admin.venue_id)
    await KeyRing(svc.store).revoke(row.key_id)
    svc.keys.evict(row.key_id)
    log.info("key %s of venue %s revoked", row.key_id, row.venue_id)
    return JSONResponse({"key_id": row.key_id, "revoked": True})


async def list_queues(request: Request) -> Response:
    svc = services(request)
    venue = await staff_venue(request, svc)
    slugs = await svc.db.venue_queues(venue)
    summaries = []
    for slug in slugs:
        with contextlib.suppress(ApiError):  # a queue gone meanwhile is simply not listed
            summaries.append(await summary(svc, slug))
    return JSONResponse(summaries)


async def follow_revocations(
    store: Store, cache: KeyCache, revoked: Callable[[str], object] | None = None
) -> None:
    """Evict each revoked key from this node's cache, and close its `watch_queue` connections
    (`revoked`); drop every cached key after a resubscribe."""
    async for key_id in KeyRing(store).revocations():
        if key_id is None:
            cache.clear()
        else:
            cache.evict(key_id)
            if revoked is not None:
                revoked(key_id)


def start_following(
    store: Store, cache: KeyCache, revoked: Callable[[str], object] | None = None
) -> asyncio.Task[None]:
    return asyncio.create_task(follow_revocations(store, cache, revoked), name="revocations")


ROUTES = [
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/v1/queues", list_queues, methods=["GET"]),
]
