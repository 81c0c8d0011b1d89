"""Staff endpoints, each behind a staff key of the venue that owns the queue."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.names import is_slug, ticket_id
from server.access import owned_queue, owned_ticket, staff_venue
from server.counters import Tally
from server.errors import ApiError
from server.httpio import JSONResponse, idempotency_key, optional_text, read_body, read_object
from server.idempotency import fingerprint, replayable
from server.queues import summary, with_live_queue
from server.queuesettings import parse_settings
from server.services import Services, services

MAX_QUEUE_NAME_CHARS = 120
MAX_COUNTER_CHARS = 40


async def _staff_queue(request: Request) -> tuple[Services, str]:
    svc = services(request)
    venue = await staff_venue(request, svc)
    queue = request.path_params["queue"]
    await owned_queue(svc, queue, venue)
    return svc, queue


async def put_queue(request: Request) -> Response:
    svc = services(request)
    venue = await staff_venue(request, svc)
    queue = request.path_params["queue"]
    if not is_slug(queue):
        raise ApiError(400, "invalid_slug", "a queue slug is [a-z0-9][a-z0-9-]{0,63}")
    data = await read_object(request)
    name = optional_text(data, "name", MAX_QUEUE_NAME_CHARS)
    change, fields = parse_settings(data)  # validated before anything is written
    existing = await svc.db.queue(queue)
    if existing is not None and existing.venue_id != venue:
        raise ApiError.from_code("forbidden", "this queue belongs to another venue")
    if existing is not None and existing.archived:
        raise ApiError.from_code("queue_archived", "this queue is archived; its slug stays taken")
    row = await svc.db.upsert_queue(queue, venue, name or (existing.name if existing else queue))
    if row.venue_id != venue:  # lost a race for the slug to another venue
        raise ApiError.from_code("forbidden", "this queue belongs to another venue")
    await svc.store.upsert_queue(queue, venue, row.name)
    if svc.known_queues is not None:
        svc.known_queues.add(queue)
    if fields:
        now_ms = int(time.time() * 1000)
        await with_live_queue(
            svc, queue, lambda: svc.store.change_settings(queue, change, fields, now_ms)
        )
        if "hours" in fields:
            await svc.store.schedule(queue, bool(fields["hours"]))
    return JSONResponse(await summary(svc, queue), 201 if existing is None else 200)


async def call_next(request: Request) -> Response:
    svc, queue = await _staff_queue(request)
    idem = idempotency_key(request)
    counter = optional_text(await read_object(request), "counter", MAX_COUNTER_CHARS)
    fp = fingerprint(request, await read_body(request)) if idem else ""
    result = await with_live_queue(
        svc, queue, lambda: svc.store.call_next(queue, counter, idem, fp)
    )
    if result.get("empty"):
        return Response(status_code=204)
    number = int(result["number"])
    Tally.calls += 1
    return JSONResponse(
        {
            "ticket_id": ticket_id(queue, number),
            "name": result.get("name"),
            "counter": result.get("counter"),
            "status": "called",
            "number": number,
        }
    )


async def _finish(request: Request, status: str) -> Response:
    svc = services(request)
    _, queue, number = await owned_ticket(request, svc)
    await svc.store.finish(queue, number, status)
    return JSONResponse({"ticket_id": ticket_id(queue, number), "status": status})


async def served(request: Request) -> Response:
    return await _finish(request, "served")


async def no_show(request: Request) -> Response:
    return await _finish(request, "no_show")


def _state_action(action: str) -> Any:
    async def endpoint(request: Request) -> Response:
        svc, queue = await _staff_queue(request)
        result = await with_live_queue(svc, queue, lambda: svc.store.set_state(queue, action))
        return JSONResponse(
            {
                "queue": queue,
                "name": result.get("name") or queue,
                "state": result["state"],
                "waiting": int(result["waiting"]),
            }
        )

    endpoint.__name__ = f"queue_{action}"
    return endpoint


async def list_tickets(request: Request) -> Response:
    svc, queue = await _staff_queue(request)
    await summary(svc, queue)  # 404 / restore if Redis lost it
    waiting = await svc.store.waiting_entries(queue)
    called = await svc.store.called_list(queue)
    return JSONResponse(
        {
            "queue": queue,
            "waiting": [
                {
                    "ticket_id": ticket_id(queue, n),
                    "name": name,
                    "position": i + 1,
                    "number": n,
                    "priority": priority,
                }
                for i, (n, name, priority) in enumerate(waiting)
            ],
            "called": [
                {
                    "ticket_id": ticket_id(queue, n),
                    "name": t.name,
                    "counter": t.counter,
                    "number": n,
                    "called_at_ms": t.called_ms,
                }
                for n, t in called
            ],
        }
    )


ROUTES = [
    Route("/v1/queues/{queue}", replayable(put_queue), methods=["PUT"]),
    Route("/v1/queues/{queue}/call-next", call_next, methods=["POST"]),
    Route("/v1/tickets/{ticket_id}/served", replayable(served), methods=["POST"]),
    Route("/v1/tickets/{ticket_id}/no-show", replayable(no_show), methods=["POST"]),
    Route("/v1/queues/{queue}/tickets", list_tickets, methods=["GET"]),
    *(
        Route(f"/v1/queues/{{queue}}/{action}", replayable(_state_action(action)), methods=["POST"])
        for action in ("pause", "resume", "close", "open")
    ),
]
