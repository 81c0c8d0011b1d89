"""The document's entries for keys and the venue's queue list (`server.keyroutes`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    BODY_CODES,
    IDEMPOTENCY_CODES,
    QUEUE_PARAM,
    STAFF_CODES,
    STORE_CODES,
    answer,
    errors,
    json_body,
    obj,
    operation,
    ref,
)
from server.openapi.queue_paths import STAFF_KEY

FORCE_PARAM = {
    "name": "force",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["true", "false"]},
    "description": "`true` removes the waiting tickets first (their watchers get `removed`).",
}
ARCHIVED = obj(
    {
        "queue": {"type": "string"},
        "archived": {"const": True},
        "archived_at": {"type": "string", "format": "date-time"},
        "removed": {"type": "integer", "minimum": 0},
    }
)
KEY_ID_PARAM = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}

PATHS: dict[str, dict[str, Any]] = {
    "/v1/keys": {
        "get": operation(
            "The venue's keys (admin)",
            "keys",
            {
                "200": answer(
                    "Every key, never its secret.", {"type": "array", "items": ref("Key")}
                ),
                **errors(*STAFF_CODES, *STORE_CODES),
            },
            security=STAFF_KEY,
        ),
        "post": operation(
            "Create a key (admin); its secret is shown once",
            "keys",
            {
                "201": answer("The new key.", ref("NewKey")),
                **errors(*BODY_CODES, *IDEMPOTENCY_CODES, *STAFF_CODES, *STORE_CODES),
            },
            body=json_body(ref("KeyBody"), "A label and a role (default `staff`)."),
            security=STAFF_KEY,
        ),
    },
    "/v1/keys/{key_id}": {
        "delete": operation(
            "Revoke a key (admin): refused on every node within 2 s",
            "keys",
            {
                "200": answer(
                    "Revoked.",
                    obj({"key_id": {"type": "string"}, "revoked": {"type": "boolean"}}),
                ),
                **errors(
                    *IDEMPOTENCY_CODES,
                    *STAFF_CODES,
                    "key_not_found",
                    "last_admin_key",
                    *STORE_CODES,
                ),
            },
            params=[KEY_ID_PARAM],
            security=STAFF_KEY,
        )
    },
    "/v1/queues": {
        "get": operation(
            "The venue's queues with their summaries",
            "staff",
            {
                "200": answer("The queues.", {"type": "array", "items": ref("QueueSummary")}),
                **errors(*STAFF_CODES, *STORE_CODES),
            },
            security=STAFF_KEY,
        )
    },
    "/v1/queues/{queue}": {
        "delete": operation(
            "Archive a queue (admin)",
            "staff",
            {
                "200": answer("Archived (again: nothing changes, `removed` is 0).", ARCHIVED),
                **errors(
                    "invalid_query",
                    *IDEMPOTENCY_CODES,
                    *STAFF_CODES,
                    "queue_not_found",
                    "queue_not_empty",
                    *STORE_CODES,
                ),
            },
            params=[QUEUE_PARAM, FORCE_PARAM],
            security=STAFF_KEY,
            description="An archived queue is closed for good: joins get `queue_closed`, "
            "opening and settings `queue_archived`, its slug stays taken, `GET /v1/queues` "
            "leaves it out, and its events and statistics stay readable. Tickets waiting: 409 "
            "`queue_not_empty`, unless `force=true`, which removes them first.",
        )
    },
}
