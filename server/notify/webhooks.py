"""The venue's webhooks (admin key): create, list, delete, and their dead letters.

`POST /v1/webhooks` `{"url", "events"}` answers 201 `{"webhook_id", "secret", ...}`: the secret
(`whsec_` + base64 of the key) is shown this once. A URL resolving to a private, loopback or
link-local address is refused (400) unless `VQ_WEBHOOK_ALLOW_PRIVATE=true`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.access import admin_identity
from server.db.deliveries import DeliveryTable, WebhookRow, WebhookTable
from server.errors import ApiError
from server.httpio import JSONResponse, read_object
from server.netcheck import url_problem
from server.notify.plan import WEBHOOK_EVENTS, new_secret
from server.services import services

MAX_WEBHOOKS_PER_VENUE = 20
DELIVERY_ID_RE = re.compile(r"msg_[a-z2-7]{26}")


def webhook_json(row: WebhookRow) -> dict[str, Any]:
    return {
        "webhook_id": row.id,
        "url": row.url,
        "events": row.events,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


def _events(value: Any) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v in WEBHOOK_EVENTS for v in value)
    ):
        raise ApiError(
            400,
            "invalid_body",
            "'events' must be a non-empty list of: " + ", ".join(WEBHOOK_EVENTS),
        )
    return sorted(set(value))


async def create_webhook(request: Request) -> Response:
    svc = services(request)
    admin = await admin_identity(request, svc)
    data = await read_object(request)
    url = data.get("url")
    problem = await url_problem(
        url, https_only=False, allow_private=svc.settings.webhook_allow_private
    )
    if problem is not None:
        raise ApiError(400, "invalid_body", f"'url' {problem}")
    assert isinstance(url, str)
    events = _events(data.get("events"))
    table = WebhookTable(svc.db)
    if len(await table.of_venue(admin.venue_id)) >= MAX_WEBHOOKS_PER_VENUE:
        raise ApiError(
            400, "invalid_body", f"a venue has at most {MAX_WEBHOOKS_PER_VENUE} webhooks"
        )
    secret = new_secret()
    webhook_id = await table.create(admin.venue_id, url, events, secret)
    body = {"webhook_id": webhook_id, "secret": secret, "url": url, "events": events}
    return JSONResponse(body, 201)


async def list_webhooks(request: Request) -> Response:
    svc = services(request)
    admin = await admin_identity(request, svc)
    rows = await WebhookTable(svc.db).of_venue(admin.venue_id)
    return JSONResponse({"webhooks": [webhook_json(r) for r in rows]})


async def _webhook(request: Request) -> WebhookRow:
    svc = services(request)
    admin = await admin_identity(request, svc)
    row = await WebhookTable(svc.db).get(admin.venue_id, request.path_params["webhook_id"])
    if row is None:
        raise ApiError.from_code("webhook_not_found")
    return row


async def delete_webhook(request: Request) -> Response:
    row = await _webhook(request)
    svc = services(request)
    if not await WebhookTable(svc.db).delete(row.venue_id, row.id):
        raise ApiError.from_code("webhook_not_found")
    return JSONResponse({"webhook_id": row.id, "deleted": True})


async def list_deliveries(request: Request) -> Response:
    row = await _webhook(request)
    status = request.query_params.get("status", "dead")
    if status != "dead":
        raise ApiError(400, "invalid_query", "'status' must be 'dead'")
    dead = await DeliveryTable(services(request).db).dead_of(row.id)
    return JSONResponse(
        {
            "deliveries": [
                {
                    "delivery_id": d.delivery_id,
                    "type": d.type,
                    "seq": d.seq,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                }
                for d in dead
            ]
        }
    )


async def retry_delivery(request: Request) -> Response:
    row = await _webhook(request)
    delivery = request.path_params["delivery_id"]
    if not DELIVERY_ID_RE.fullmatch(delivery):
        raise ApiError.from_code("delivery_not_found")
    svc = services(request)
    if not await DeliveryTable(svc.db).retry(row.id, delivery):
        raise ApiError.from_code("delivery_not_found")
    if svc.notifier is not None:
        svc.notifier.wake()
    return JSONResponse({"delivery_id": delivery, "status": "pending"})


ROUTES = [
    Route("/v1/webhooks", create_webhook, methods=["POST"]),
    Route("/v1/webhooks", list_webhooks, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
    Route("/v1/webhooks/{webhook_id}/deliveries", list_deliveries, methods=["GET"]),
    Route(
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
        retry_delivery,
        methods=["POST"],
    ),
]
