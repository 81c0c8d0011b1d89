"""The named schemas of the OpenAPI document (`components.schemas`)."""

from __future__ import annotations

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

SCHEMAS: dict[str, Schema] = {
    "QueueSummary": QUEUE_SUMMARY,
    "JoinBody": obj({}, {"name": short_text(80)}),
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
