"""The document's entries for reaching customers and integrators: the ticket's contact routes
(`server.contacts`) and the webhooks (`server.notify.webhooks`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    BODY_CODES,
    STAFF_CODES,
    STORE_CODES,
    TICKET_PARAM,
    answer,
    errors,
    json_body,
    obj,
    operation,
    ref,
)
from server.openapi.queue_paths import STAFF_KEY, TICKET_TOKEN

CONTACT_CODES = ("unauthorized", "ticket_finished", "forbidden_origin", *STORE_CODES)

PATHS: dict[str, dict[str, Any]] = {
    "/v1/tickets/{ticket_id}/contact": {
        "put": operation(
            "Set how to reach the ticket's customer when the page sleeps",
            "customers",
            {
                "200": answer("The channels now given.", ref("ContactChannels")),
                **errors(*BODY_CODES, *CONTACT_CODES),
            },
            params=[TICKET_PARAM],
            body=json_body(ref("Contact"), "Replaces the ticket's contacts; `{}` removes them."),
            security=TICKET_TOKEN,
            description="Only the channels the queue enables are used. Contacts are deleted "
            "once the ticket finishes and follow it when it is transferred.",
        ),
        "delete": operation(
            "Remove the ticket's contacts",
            "customers",
            {
                "200": answer("No channel is left.", ref("ContactChannels")),
                **errors(*CONTACT_CODES),
            },
            params=[TICKET_PARAM],
            security=TICKET_TOKEN,
        ),
    },
}

WEBHOOK_PARAM = {
    "name": "webhook_id",
    "in": "path",
    "required": True,
    "description": "The webhook's id; an unknown or malformed one answers 404.",
    "schema": {"type": "string"},
}
DELIVERY_PARAM = {
    "name": "delivery_id",
    "in": "path",
    "required": True,
    "description": "A dead delivery's id (`msg_...`); any other answers 404.",
    "schema": {"type": "string"},
}
STATUS_PARAM = {
    "name": "status",
    "in": "query",
    "required": False,
    "description": "Only `dead` (the default): deliveries given up after their last retry.",
    "schema": {"type": "string"},
}
ADMIN_CODES = (*STAFF_CODES, *STORE_CODES)

PATHS.update(
    {
        "/v1/webhooks": {
            "post": operation(
                "Create a webhook (admin); its secret is shown once",
                "webhooks",
                {
                    "201": answer("The new webhook and its signing secret.", ref("NewWebhook")),
                    **errors(*BODY_CODES, "forbidden_origin", *ADMIN_CODES),
                },
                body=json_body(ref("WebhookBody"), "Where to POST, and which event types."),
                security=STAFF_KEY,
                description="Deliveries follow Standard Webhooks: headers `webhook-id` (stable "
                "across retries), `webhook-timestamp` and `webhook-signature: v1,<base64 of "
                'HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. A URL resolving to a private, '
                "loopback or link-local address is refused unless `VQ_WEBHOOK_ALLOW_PRIVATE`.",
            ),
            "get": operation(
                "The venue's webhooks (admin)",
                "webhooks",
                {
                    "200": answer(
                        "Every webhook, never its secret.",
                        obj({"webhooks": {"type": "array", "items": ref("Webhook")}}),
                    ),
                    **errors(*ADMIN_CODES),
                },
                security=STAFF_KEY,
            ),
        },
        "/v1/webhooks/{webhook_id}": {
            "delete": operation(
                "Delete a webhook (admin) and its deliveries",
                "webhooks",
                {
                    "200": answer(
                        "Deleted.",
                        obj({"webhook_id": {"type": "string"}, "deleted": {"type": "boolean"}}),
                    ),
                    **errors("forbidden_origin", "webhook_not_found", *ADMIN_CODES),
                },
                params=[WEBHOOK_PARAM],
                security=STAFF_KEY,
            )
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "get": operation(
                "A webhook's dead letters (admin)",
                "webhooks",
                {
                    "200": answer(
                        "Deliveries given up after their last retry, in seq order.",
                        obj({"deliveries": {"type": "array", "items": ref("DeadDelivery")}}),
                    ),
                    **errors("invalid_query", "webhook_not_found", *ADMIN_CODES),
                },
                params=[WEBHOOK_PARAM, STATUS_PARAM],
                security=STAFF_KEY,
            )
        },
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry": {
            "post": operation(
                "Try a dead delivery again (admin)",
                "webhooks",
                {
                    "200": answer(
                        "Due again now.",
                        obj({"delivery_id": {"type": "string"}, "status": {"const": "pending"}}),
                    ),
                    **errors(
                        "forbidden_origin",
                        "webhook_not_found",
                        "delivery_not_found",
                        *ADMIN_CODES,
                    ),
                },
                params=[WEBHOOK_PARAM, DELIVERY_PARAM],
                security=STAFF_KEY,
            )
        },
    }
)
