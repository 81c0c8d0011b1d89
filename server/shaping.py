"""Staff shaping the line: remove (one, a list, or all), recall, requeue and transfer.

Each route needs a staff key of the venue that owns the ticket's queue; each change is one Lua
script (a transfer is two, see `server/transfers.py`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.names import is_slug, parse_ticket_id, ticket_id
from server import transfers
from server.access import owned_queue, owned_ticket, staff_venue
from server.db.contacts import ContactTable
from server.errors import ApiError
from server.httpio import JSONResponse, optional_text, read_object
from server.idempotency import replayable
from server.queues import with_live_queue
from server.services import Services, services

MAX_REASON_CHARS = 200
MAX_COUNTER_CHARS = 40
MAX_BULK = 1000
MAX_POSITION = 1_000_000_000


async def _staff_ticket(request: Request) -> tuple[Services, str, str, int, dict[str, Any]]:
    """(services, venue, queue, number, body) for a staff route on /v1/tickets/{ticket_id}."""
    svc = services(request)
    venue, queue, number = await owned_ticket(request, svc)
    return svc, venue, queue, number, await read_object(request)


def optional_position(data: dict[str, Any]) -> int | None:
    """A 1-based place in line, or None when absent."""
    value = data.get("position")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "invalid_body", "'position' must be an integer")
    if not 1 <= value <= MAX_POSITION:
        raise ApiError(400, "invalid_body", f"'position' must be 1..{MAX_POSITION}")
    return value


async def remove_ticket(request: Request) -> Response:
    svc, _, queue, number, data = await _staff_ticket(request)
    reason = optional_text(data, "reason", MAX_REASON_CHARS)
    await with_live_queue(svc, queue, lambda: svc.store.remove(queue, number, reason))
    return JSONResponse({"ticket_id": ticket_id(queue, number), "status": "removed"})


def _bulk_numbers(queue: str, data: dict[str, Any]) -> list[int] | None:
    """The numbers of `ticket_ids`, or None for `all: true`."""
    everyone = data.get("all")
    ids = data.get("ticket_ids")
    if everyone is not None and everyone is not True:
        raise ApiError(400, "invalid_body", "'all' must be true when given")
    if (everyone is True) == (ids is not None):
        raise ApiError(400, "invalid_body", "send either 'ticket_ids' or 'all': true")
    if everyone:
        return None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK:
        raise ApiError(400, "invalid_body", f"'ticket_ids' must be a list of 1..{MAX_BULK} ids")
    numbers: list[int] = []
    for tid in ids:
        parsed = parse_ticket_id(tid) if isinstance(tid, str) else None
        if parsed is None or parsed[0] != queue:
            raise ApiError(400, "invalid_body", "'ticket_ids' must be ticket ids of this queue")
        numbers.append(parsed[1])
    return numbers


async def remove_many(request: Request) -> Response:
    svc = services(request)
    venue = await staff_venue(request, svc)
    queue = request.path_params["queue"]
    await owned_queue(svc, queue, venue)
    data = await read_object(request)
    numbers = _bulk_numbers(queue, data)
    reason = optional_text(data, "reason", MAX_REASON_CHARS)
    result = await with_live_queue(
        svc, queue, lambda: svc.store.remove_many(queue, numbers, reason)
    )
    return JSONResponse({"queue": queue, "removed": int(result["removed"])})


async def recall(request: Request) -> Response:
    svc, _, queue, number, data = await _staff_ticket(request)
    counter = optional_text(data, "counter", MAX_COUNTER_CHARS)
    result = await with_live_queue(svc, queue, lambda: svc.store.recall(queue, number, counter))
    return JSONResponse(
        {
            "ticket_id": ticket_id(queue, number),
            "name": result.get("name"),
            "counter": result.get("counter"),
            "status": "called",
        }
    )


async def requeue(request: Request) -> Response:
    svc, _, queue, number, data = await _staff_ticket(request)
    position = optional_position(data) or 1
    result = await with_live_queue(svc, queue, lambda: svc.store.requeue(queue, number, position))
    return JSONResponse(
        {
            "ticket_id": ticket_id(queue, number),
            "status": "waiting",
            "position": int(result["position"]),
            "priority": int(result["priority"]),
        }
    )


async def transfer(request: Request) -> Response:
    svc, venue, queue, number, data = await _staff_ticket(request)
    target = data.get("queue")
    if not isinstance(target, str) or not is_slug(target):
        raise ApiError(400, "invalid_body", "'queue' must be a queue slug")
    if target == queue:
        raise ApiError(400, "invalid_body", "the ticket is already in this queue")
    position = optional_position(data)
    await owned_queue(svc, target, venue)  # 404 unknown, 403 another venue's
    view = await svc.store.ticket(queue, number)
    if view is None:
        raise ApiError.from_code("ticket_not_found")
    if view.status not in ("waiting", "called"):
        raise ApiError.from_code("ticket_finished")
    ticket = {"name": view.name, "priority": view.priority}
    intent = transfers.new_intent(venue, queue, number, target, ticket, position)
    moved = await with_live_queue(svc, target, lambda: transfers.transfer(svc.store, intent))
    # The contacts follow now, so the new ticket is reachable at once; the notifier moves them
    # too when it handles the `transferred` event (a transfer a crash left to the recovery).
    await ContactTable(svc.db).move(queue, number, target, moved.number)
    return JSONResponse(
        {
            "ticket_id": ticket_id(target, moved.number),
            "queue": target,
            "status": "waiting",
            "position": moved.position,
            "from_ticket_id": ticket_id(queue, number),
        }
    )


ROUTES = [
    Route("/v1/tickets/{ticket_id}/remove", replayable(remove_ticket), methods=["POST"]),
    Route("/v1/queues/{queue}/remove", replayable(remove_many), methods=["POST"]),
    Route("/v1/tickets/{ticket_id}/recall", replayable(recall), methods=["POST"]),
    Route("/v1/tickets/{ticket_id}/requeue", replayable(requeue), methods=["POST"]),
    Route("/v1/tickets/{ticket_id}/transfer", replayable(transfer), methods=["POST"]),
]
