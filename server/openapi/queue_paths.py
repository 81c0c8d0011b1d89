"""The document's entries for the customer and staff routes (`server.customers`, `server.staff`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    BODY_CODES,
    IDEMPOTENCY_CODES,
    IDEMPOTENCY_PARAM,
    QUEUE_PARAM,
    STAFF_CODES,
    STORE_CODES,
    TICKET_PARAM,
    answer,
    errors,
    json_body,
    operation,
    ref,
)

TICKET_TOKEN = "ticketToken"
STAFF_KEY = "staffKey"


def _state_action(action: str) -> dict[str, Any]:
    on_open_only = action in ("pause", "resume")
    return operation(
        f"{action.capitalize()} the queue",
        "staff",
        {
            "200": answer("The queue's summary after the change.", ref("QueueSummary")),
            **errors(
                *IDEMPOTENCY_CODES,
                *STAFF_CODES,
                "queue_not_found",
                *(["queue_closed"] if on_open_only else []),
                *([] if action == "close" else ["queue_archived"]),
                *STORE_CODES,
            ),
        },
        params=[QUEUE_PARAM, IDEMPOTENCY_PARAM],
        security=STAFF_KEY,
        description="Acts on an open or paused queue; a closed one answers 409."
        if on_open_only
        else "Acts from any state; call-next still drains a closed queue.",
    )


def _finish(status: str) -> dict[str, Any]:
    return operation(
        f"Mark a called ticket {status}",
        "staff",
        {
            "200": answer("The ticket is finished.", ref("Finished")),
            **errors(
                *IDEMPOTENCY_CODES,
                *STAFF_CODES,
                "ticket_not_found",
                "ticket_not_called",
                "ticket_finished",
                *STORE_CODES,
            ),
        },
        params=[TICKET_PARAM, IDEMPOTENCY_PARAM],
        security=STAFF_KEY,
    )


PATHS: dict[str, dict[str, Any]] = {
    "/v1/queues/{queue}": {
        "get": operation(
            "A queue's public summary",
            "customers",
            {
                "200": answer("The summary.", ref("QueueSummary")),
                **errors("queue_not_found", *STORE_CODES),
            },
            params=[QUEUE_PARAM],
        ),
        "put": operation(
            "Create or rename a queue",
            "staff",
            {
                "200": answer("Updated.", ref("QueueSummary")),
                "201": answer("Created.", ref("QueueSummary")),
                **errors(
                    *BODY_CODES,
                    "invalid_slug",
                    *IDEMPOTENCY_CODES,
                    *STAFF_CODES,
                    "queue_archived",
                    *STORE_CODES,
                ),
            },
            params=[QUEUE_PARAM, IDEMPOTENCY_PARAM],
            body=json_body(ref("QueueBody"), "The queue's display name (default: the slug)."),
            security=STAFF_KEY,
        ),
    },
    "/v1/queues/{queue}/tickets": {
        "post": operation(
            "Join a queue",
            "customers",
            {
                "201": answer("The new ticket and its token.", ref("Joined")),
                **errors(
                    *BODY_CODES,
                    *IDEMPOTENCY_CODES,
                    *STAFF_CODES,
                    "queue_not_found",
                    "queue_closed",
                    "rate_limited",
                    *STORE_CODES,
                ),
            },
            params=[QUEUE_PARAM, IDEMPOTENCY_PARAM],
            body=json_body(ref("JoinBody"), "An optional name shown to staff."),
            description="Without a staff key: rate-limited per client address (429 with "
            "`Retry-After`), and an `Idempotency-Key` needs at least 16 characters. With a "
            "staff key (of the owning venue, else 401/403): no limits.",
        ),
        "get": operation(
            "The whole line, for staff",
            "staff",
            {
                "200": answer("Waiting tickets in order, and called ones.", ref("StaffTickets")),
                **errors(*STAFF_CODES, "queue_not_found", *STORE_CODES),
            },
            params=[QUEUE_PARAM],
            security=STAFF_KEY,
        ),
    },
    "/v1/tickets/{ticket_id}": {
        "get": operation(
            "A ticket's state",
            "customers",
            {
                "200": answer("The ticket.", ref("Ticket")),
                **errors("unauthorized", *STORE_CODES),
            },
            params=[TICKET_PARAM],
            security=TICKET_TOKEN,
        ),
        "delete": operation(
            "Leave the queue",
            "customers",
            {
                "200": answer("The ticket has left.", ref("Left")),
                **errors(
                    *IDEMPOTENCY_CODES,
                    "unauthorized",
                    "queue_not_found",
                    "ticket_finished",
                    *STORE_CODES,
                ),
            },
            params=[TICKET_PARAM, IDEMPOTENCY_PARAM],
            security=TICKET_TOKEN,
        ),
    },
    "/v1/queues/{queue}/call-next": {
        "post": operation(
            "Call the next ticket",
            "staff",
            {
                "200": answer("The ticket called.", ref("Called")),
                "204": {"description": "Nobody is waiting.", "headers": answer("")["headers"]},
                **errors(
                    *BODY_CODES,
                    *IDEMPOTENCY_CODES,
                    *STAFF_CODES,
                    "queue_not_found",
                    "queue_paused",
                    *STORE_CODES,
                ),
            },
            params=[QUEUE_PARAM, IDEMPOTENCY_PARAM],
            body=json_body(ref("CallBody"), "The counter the ticket is called to."),
            security=STAFF_KEY,
            description="Two concurrent calls never return the same ticket.",
        )
    },
    "/v1/tickets/{ticket_id}/served": {"post": _finish("served")},
    "/v1/tickets/{ticket_id}/no-show": {"post": _finish("no_show")},
    **{
        f"/v1/queues/{{queue}}/{action}": {"post": _state_action(action)}
        for action in ("pause", "resume", "close", "open")
    },
}
