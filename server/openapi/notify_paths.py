"""The document's entries for reaching customers and integrators: the ticket's contact routes
(`server.contacts`) and the webhooks (`server.notify.webhooks`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    BODY_CODES,
    STORE_CODES,
    TICKET_PARAM,
    answer,
    errors,
    json_body,
    operation,
    ref,
)
from server.openapi.queue_paths import TICKET_TOKEN

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
