"""Archiving a queue: `DELETE /v1/queues/{queue}` (admin key of the owning venue).

An archived queue is retired for good. Redis keeps it closed with an `archived` time (one
script, `archive.lua`, which with `?force=true` first removes the waiting tickets as the bulk
removal does), PostgreSQL marks its row `archived_at`. Afterwards: `GET /v1/queues` no longer
lists it; joins and transfers into it get 409 `queue_closed`; opening, resuming, pausing and
settings get 409 `queue_archived`; its slug cannot be taken again (`PUT` answers
`queue_archived`); called tickets can still be served; the events and statistics stay readable
to the venue's staff; the customer page and the board say it is no longer in use.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.access import admin_identity, owned_queue
from server.errors import ApiError
from server.history import iso
from server.httpio import JSONResponse
from server.queues import with_live_queue
from server.services import services

FORCE_VALUES = {"true": True, "false": False, "": False}


def force_param(request: Request) -> bool:
    raw = request.query_params.get("force", "")
    if raw not in FORCE_VALUES:
        raise ApiError(400, "invalid_query", "'force' must be true or false")
    return FORCE_VALUES[raw]


async def archive_queue(request: Request) -> Response:
    svc = services(request)
    admin = await admin_identity(request, svc)
    queue = request.path_params["queue"]
    force = force_param(request)
    await owned_queue(svc, queue, admin.venue_id)
    result = await with_live_queue(svc, queue, lambda: svc.store.archive(queue, force))
    await svc.db.archive_queue(queue, admin.venue_id)
    await svc.store.schedule(queue, False)
    return JSONResponse(
        {
            "queue": queue,
            "archived": True,
            "archived_at": iso(int(result["archived"])),
            "removed": int(result["removed"]),
        }
    )


ROUTES = [Route("/v1/queues/{queue}", archive_queue, methods=["DELETE"])]
