"""The document's entries for keys and the venue's queue list (`server.keyroutes`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    BODY_CODES,
    IDEMPOTENCY_CODES,
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
}
