"""Customer endpoints: join a queue, read, leave, and the public queue summary."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.names import ticket_id
from protocol.score import MAX_PRIORITY
from server.access import live_ticket_claim, owned_queue, staff_venue
from server.auth import bearer, parse_staff_key
from server.contacts import join_contact
from server.counters import Tally
from server.db.contacts import ContactTable
from server.errors import ApiError
from server.httpio import JSONResponse, idempotency_key, optional_text, read_body, read_object
from server.idempotency import fingerprint, replayable
from server.limits import join_limits
from server.queues import summary, with_live_queue
from server.services import Services, services
from server.store import JoinLimits

MAX_NAME_CHARS = 80
# A customer's key must not be guessable, or a replay could reach someone else's join.
MIN_PUBLIC_IDEMPOTENCY_KEY_CHARS = 16


async def _join_limits(request: Request, svc: Services, queue: str) -> JoinLimits | None:
    """No limits for the venue's own staff (a staff key of the owning venue); else the public's."""
    if "authorization" in request.headers:
        await owned_queue(svc, queue, await staff_venue(request, svc))
        return None
    return join_limits(svc.settings, request.scope)


async def join(request: Request) -> Response:
    svc = services(request)
    queue = request.path_params["queue"]
    limits = await _join_limits(request, svc, queue)
    staff = "authorization" in request.headers
    idem = idempotency_key(request, 1 if staff else MIN_PUBLIC_IDEMPOTENCY_KEY_CHARS)
    data = await read_object(request)
    name = optional_text(data, "name", MAX_NAME_CHARS)
    priority = await _staff_priority(request, queue, data)
    contact = await join_contact(svc, data)
    fp = fingerprint(request, await read_body(request)) if idem else ""
    result = await with_live_queue(
        svc, queue, lambda: svc.store.join(queue, name, idem, fp, limits, priority)
    )
    tid = ticket_id(queue, int(result["number"]))
    if contact is not None:
        # After the join, so a refused join stores nothing; a join repeated with its
        # Idempotency-Key (say after a 503 here) writes the same contact again.
        await ContactTable(svc.db).put(queue, int(result["number"]), contact)
        if svc.notifier is not None:
            position, seq = int(result["position"]), int(result["seq"])
            await svc.notifier.contact_given(queue, int(result["number"]), position, seq)
    Tally.joins += 1
    return JSONResponse(
        {
            "ticket_id": tid,
            "token": svc.signer.sign(tid, str(result["nonce"])),
            "queue": queue,
            "status": "waiting",
            "position": int(result["position"]),
            "number": int(result["number"]),
            "waiting": int(result["waiting"]),
        },
        201,
    )


async def _staff_priority(request: Request, queue: str, data: dict[str, Any]) -> int:
    """A staff join's `priority` (0..9, higher is called first); 0 for a customer's join."""
    if "priority" not in data:
        return 0
    key = bearer(request.headers.get("authorization"))
    if key is None or parse_staff_key(key) is None:
        raise ApiError(400, "invalid_body", "'priority' needs a staff key")
    svc = services(request)
    await owned_queue(svc, queue, await staff_venue(request, svc))
    value = data["priority"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise ApiError(
            400, "invalid_body", f"'priority' must be an integer from 0 to {MAX_PRIORITY}"
        )
    return value


async def read_ticket(request: Request) -> Response:
    svc = services(request)
    tid = request.path_params["ticket_id"]
    claim = await live_ticket_claim(request, svc, tid)
    view = await svc.store.ticket(claim.queue, claim.number)
    if view is None or view.nonce != claim.nonce:
        raise ApiError.from_code("unauthorized", "this token's ticket no longer exists")
    body: dict[str, Any] = {
        "ticket_id": tid,
        "queue": claim.queue,
        "status": view.status,
        "position": view.position,
        "number": view.number,
        "name": view.name,
        "counter": view.counter,
        "waiting": view.waiting,
        "priority": view.priority,
    }
    if view.to_queue and view.to_number is not None and view.to_nonce:
        to_id = ticket_id(view.to_queue, view.to_number)
        body.update(
            to_ticket_id=to_id, to_queue=view.to_queue, token=svc.signer.sign(to_id, view.to_nonce)
        )
    return JSONResponse(body)


async def leave(request: Request) -> Response:
    svc = services(request)
    tid = request.path_params["ticket_id"]
    claim = await live_ticket_claim(request, svc, tid)
    await svc.store.leave(claim.queue, claim.number, claim.nonce)
    return JSONResponse({"ticket_id": tid, "status": "left"})


async def queue_summary(request: Request) -> Response:
    svc = services(request)
    return JSONResponse(await summary(svc, request.path_params["queue"]))


ROUTES = [
    Route("/v1/queues/{queue}/tickets", join, methods=["POST"]),
    Route("/v1/tickets/{ticket_id}", read_ticket, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}", replayable(leave), methods=["DELETE"]),
    Route("/v1/queues/{queue}", queue_summary, methods=["GET"]),
]
