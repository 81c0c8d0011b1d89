"""The named schemas of the OpenAPI document (`components.schemas`)."""

from __future__ import annotations

from server.notify.plan import WEBHOOK_EVENTS as EVENT_NAMES
from server.openapi.common import COUNT, NULLABLE_TEXT, SLUG, TICKET_ID, Schema, const, obj

STATE = {"type": "string", "enum": ["open", "paused", "closed"]}
STATUS = {"type": "string", "enum": ["waiting", "called", "served", "no_show", "left"]}
POSITION = {"type": "integer", "minimum": 1}
NUMBER = {"type": "integer", "minimum": 1}
SECONDS = {"type": ["number", "null"]}
ISO_TIME = {"type": "string", "format": "date-time"}
MS = {"type": "integer"}


def short_text(max_chars: int) -> Schema:
    # The limit applies once surrounding spaces are trimmed, which JSON Schema cannot say.
    return NULLABLE_TEXT | {
        "description": f"At most {max_chars} printable characters once trimmed; blank means none."
    }


QUEUE_SUMMARY = obj(
    {"queue": SLUG, "name": {"type": "string"}, "state": STATE, "waiting": COUNT},
    {"archived": {"type": "boolean", "description": "retired by DELETE: closed for good"}},
)

B64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]+=*$", "maxLength": 200}
CONTACT = obj(
    {},
    {
        "email": {"type": "string", "maxLength": 254, "description": "an email address"},
        "phone": {"type": "string", "pattern": "^\\+[1-9][0-9]{6,14}$", "description": "E.164"},
        "push": obj(
            {
                "endpoint": {
                    "type": "string",
                    "maxLength": 2048,
                    "description": "https, resolving to a public address",
                },
                "keys": obj({"p256dh": B64URL, "auth": B64URL}),
            },
            {"expirationTime": {"type": ["number", "null"]}},
        ),
    },
)

WEBHOOK_EVENT = {"type": "string", "enum": list(EVENT_NAMES)}
WEBHOOK_EVENTS = {"type": "array", "items": WEBHOOK_EVENT, "minItems": 1}

SCHEMAS: dict[str, Schema] = {
    "QueueSummary": QUEUE_SUMMARY,
    "WebhookBody": obj({"url": {"type": "string", "maxLength": 2048}, "events": WEBHOOK_EVENTS}),
    "Webhook": obj(
        {
            "webhook_id": {"type": "string"},
            "url": {"type": "string"},
            "events": WEBHOOK_EVENTS,
            "created_at": ISO_TIME,
        }
    ),
    "NewWebhook": obj(
        {
            "webhook_id": {"type": "string"},
            "secret": {"type": "string", "description": "whsec_ + base64 of the key: shown once"},
        },
        {"url": {"type": "string"}, "events": WEBHOOK_EVENTS},
    ),
    "DeadDelivery": obj(
        {
            "delivery_id": {"type": "string"},
            "type": {"type": "string"},
            "seq": {"type": "integer"},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": NULLABLE_TEXT,
        }
    ),
    "JoinBody": obj({}, {"name": short_text(80), "contact": CONTACT}),
    "Contact": CONTACT,
    "ContactChannels": obj(
        {
            "ticket_id": TICKET_ID,
            "channels": {
                "type": "array",
                "items": {"type": "string", "enum": ["email", "sms", "push"]},
            },
        }
    ),
    "QueueBody": obj({}, {"name": short_text(120)}),
    "CallBody": obj({}, {"counter": short_text(40)}),
    "Joined": obj(
        {
            "ticket_id": TICKET_ID,
            "token": {"type": "string", "description": "the ticket token: keep it secret"},
            "queue": SLUG,
            "status": const("waiting"),
            "position": POSITION,
        },
        {"number": NUMBER, "waiting": COUNT},
    ),
    "Ticket": obj(
        {
            "ticket_id": TICKET_ID,
            "queue": SLUG,
            "status": STATUS,
            "position": {"type": ["integer", "null"], "minimum": 1},
        },
        {"number": NUMBER, "name": NULLABLE_TEXT, "counter": NULLABLE_TEXT, "waiting": COUNT},
    ),
    "Left": obj({"ticket_id": TICKET_ID, "status": const("left")}),
    "Called": obj(
        {
            "ticket_id": TICKET_ID,
            "name": NULLABLE_TEXT,
            "counter": NULLABLE_TEXT,
            "status": const("called"),
        },
        {"number": NUMBER},
    ),
    "Finished": obj(
        {"ticket_id": TICKET_ID, "status": {"type": "string", "enum": ["served", "no_show"]}}
    ),
    "StaffTickets": obj(
        {
            "queue": SLUG,
            "waiting": {
                "type": "array",
                "items": obj(
                    {"ticket_id": TICKET_ID, "name": NULLABLE_TEXT, "position": POSITION},
                    {"number": NUMBER},
                ),
            },
        },
        {
            "called": {
                "type": "array",
                "items": obj(
                    {"ticket_id": TICKET_ID, "name": NULLABLE_TEXT, "counter": NULLABLE_TEXT},
                    {"number": NUMBER, "called_at_ms": {"type": ["integer", "null"]}},
                ),
            }
        },
    ),
    "Events": obj(
        {
            "queue": SLUG,
            "events": {
                "type": "array",
                "items": obj(
                    {
                        "seq": NUMBER,
                        "type": {"type": "string"},
                        "ticket_id": {"anyOf": [TICKET_ID, {"type": "null"}]},
                        "at": ISO_TIME,
                        "at_ms": MS,
                        "epoch": {"type": "string"},
                    },
                    {
                        "waiting": COUNT,
                        "name": NULLABLE_TEXT,
                        "counter": NULLABLE_TEXT,
                        "waited_ms": MS,
                        "service_ms": MS,
                    },
                ),
            },
            "next_after_seq": COUNT,
        }
    ),
    "Stats": obj(
        {
            "queue": SLUG,
            "since": ISO_TIME,
            "until": ISO_TIME,
            **dict.fromkeys(("joins", "called", "served", "no_shows", "left"), COUNT),
            **dict.fromkeys(
                ("avg_wait_s", "p90_wait_s", "avg_service_s", "avg_call_interval_s"), SECONDS
            ),
            "throughput_per_hour": {
                "type": "array",
                "items": obj(
                    {
                        "hour": ISO_TIME,
                        **dict.fromkeys(("joins", "called", "served", "no_shows", "left"), COUNT),
                    },
                    {
                        "waiting": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "description": "the line's length after the hour's last event",
                        }
                    },
                ),
            },
            "eta_error": obj(
                {
                    "samples": COUNT,
                    "mean_s": SECONDS,
                    "mean_abs_s": SECONDS,
                    "p90_abs_s": SECONDS,
                }
            ),
        }
    ),
    "Board": {
        "allOf": [
            QUEUE_SUMMARY,
            obj(
                {
                    "counters": {
                        "type": "array",
                        "items": obj(
                            {
                                "counter": NULLABLE_TEXT,
                                "ticket_id": TICKET_ID,
                                "number": NUMBER,
                                "name": NULLABLE_TEXT,
                                "status": STATUS,
                                "called_at_ms": {"type": ["integer", "null"]},
                            }
                        ),
                    }
                }
            ),
        ]
    },
    "KeyBody": obj({}, {"label": short_text(100), "role": {"enum": ["staff", "admin"]}}),
    "Key": obj(
        {
            "key_id": {"type": "string"},
            "label": {"type": "string"},
            "role": {"enum": ["staff", "admin"]},
            "created_at": ISO_TIME,
            "last_used_at": {"anyOf": [ISO_TIME, {"type": "null"}]},
        }
    ),
    "NewKey": obj(
        {
            "key_id": {"type": "string"},
            "staff_key": {"type": "string", "description": "the secret: shown only here"},
            "label": {"type": "string"},
            "role": {"enum": ["staff", "admin"]},
        }
    ),
    "Readiness": obj(
        {"ready": {"type": "boolean"}},
        {
            "redis": {"type": "boolean"},
            "postgres": {"type": "boolean"},
            "watchers": COUNT,
            "frames_sent": COUNT,
            "resyncs": {"type": "object", "additionalProperties": COUNT},
            "persistence": {"type": "object"},
        },
    ),
}
