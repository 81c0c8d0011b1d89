"""The document's entries for staff shaping the line (`server.shaping`): remove, recall,
requeue, transfer."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    BODY_CODES,
    IDEMPOTENCY_CODES,
    IDEMPOTENCY_PARAM,
    NULLABLE_TEXT,
    QUEUE_PARAM,
    SLUG,
    STAFF_CODES,
    STORE_CODES,
    TICKET_ID,
    TICKET_PARAM,
    answer,
    const,
    errors,
    json_body,
    obj,
    operation,
)
from server.openapi.queue_paths import STAFF_KEY

POSITION = {"type": "integer", "minimum": 1}
CHANGE = (*BODY_CODES, *IDEMPOTENCY_CODES, *STAFF_CODES)
TICKET_IDS = {"type": "array", "items": TICKET_ID, "maxItems": 1000}


def _ticket_op(
    summary: str, ok: dict[str, Any], body: dict[str, Any], *codes: str
) -> dict[str, Any]:
    return {
        "post": operation(
            summary,
            "staff",
            {
                "200": answer("Done.", ok),
                **errors(*CHANGE, "ticket_not_found", "queue_not_found", *codes, *STORE_CODES),
            },
            params=[TICKET_PARAM, IDEMPOTENCY_PARAM],
            body=json_body(body, "Optional fields."),
            security=STAFF_KEY,
        )
    }


PATHS: dict[str, dict[str, Any]] = {
    "/v1/tickets/{ticket_id}/remove": _ticket_op(
        "Remove a waiting or called ticket",
        obj({"ticket_id": TICKET_ID, "status": const("removed")}),
        obj({}, {"reason": NULLABLE_TEXT}),
        "ticket_finished",
    ),
    "/v1/tickets/{ticket_id}/recall": _ticket_op(
        "Call a called ticket again (its watchers get `called` with `recall: true`)",
        obj(
            {
                "ticket_id": TICKET_ID,
                "name": NULLABLE_TEXT,
                "counter": NULLABLE_TEXT,
                "status": const("called"),
            }
        ),
        obj({}, {"counter": NULLABLE_TEXT}),
        "ticket_not_called",
        "ticket_waiting",
        "ticket_finished",
    ),
    "/v1/tickets/{ticket_id}/requeue": _ticket_op(
        "Put a called (or recently no-show) ticket back in line",
        obj(
            {"ticket_id": TICKET_ID, "status": const("waiting"), "position": POSITION},
            {"priority": {"type": "integer", "minimum": 0}},
        ),
        obj({}, {"position": POSITION}),
        "bad_position",
        "ticket_waiting",
        "ticket_finished",
    ),
    "/v1/tickets/{ticket_id}/transfer": _ticket_op(
        "Move a waiting or called ticket to another queue of the venue",
        obj(
            {
                "ticket_id": TICKET_ID,
                "queue": SLUG,
                "status": const("waiting"),
                "position": POSITION,
            },
            {"from_ticket_id": TICKET_ID},
        ),
        obj({"queue": SLUG}, {"position": POSITION}),
        "bad_position",
        "bad_priority",
        "queue_closed",
        "queue_full",
        "ticket_finished",
    ),
    "/v1/queues/{queue}/remove": {
        "post": operation(
            "Remove many waiting tickets, or all of them, in one change",
            "staff",
            {
                "200": answer(
                    "How many were removed.",
                    obj({"queue": SLUG, "removed": POSITION | {"minimum": 0}}),
                ),
                **errors(*CHANGE, "queue_not_found", "bad_ticket", "bad_action", *STORE_CODES),
            },
            params=[QUEUE_PARAM, IDEMPOTENCY_PARAM],
            body=json_body(
                obj(
                    {},
                    {
                        "ticket_ids": {"type": "array", "items": TICKET_ID, "maxItems": 1000},
                        "all": {"const": True},
                        "reason": NULLABLE_TEXT,
                    },
                ),
                '`{"ticket_ids": [...]}` (at most 1,000) or `{"all": true}`.',
            ),
            security=STAFF_KEY,
        )
    },
}
