"""Building blocks of the OpenAPI document: parameters, bodies, answers and error answers.

Error answers are generated from the error codes a route can give: `errors("queue_not_found",
"queue_closed")` yields a 404 and a 409 answer whose `error.code` is an enum of exactly those
codes (statuses from `server.errors.STATUS_OF_CODE`), so the document and the fuzz run agree on
every code. Every answer carries `X-Request-ID`.
"""

from __future__ import annotations

from typing import Any

from server.errors import STATUS_OF_CODE

Schema = dict[str, Any]

# 503: a store unreachable, or too many requests in progress (both with Retry-After).
STORE_CODES = ("unavailable", "overloaded")
# A browser's body must be JSON (415); every body has the contract's limits.
BODY_CODES = (
    "bad_request",
    "invalid_json",
    "invalid_body",
    "payload_too_large",
    "unsupported_media_type",
)
# Every changing call: its Idempotency-Key, and a browser's Origin (server/guard.py).
IDEMPOTENCY_CODES = ("invalid_idempotency_key", "idempotency_key_reused", "forbidden_origin")
STAFF_CODES = ("unauthorized", "forbidden")
STATUS_OF = {
    **STATUS_OF_CODE,
    "unavailable": 503,
    "key_not_found": 404,
    "last_admin_key": 409,
}

REQUEST_ID_HEADER = {
    "X-Request-ID": {
        "description": "The request's id: the client's own if it sent a valid one, else new; "
        "every log line of the request names it.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    }
}

SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}
TICKET_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}\\.[1-9][0-9]{0,17}$"}
NULLABLE_TEXT = {"type": ["string", "null"]}
COUNT = {"type": "integer", "minimum": 0}

QUEUE_PARAM = {
    "name": "queue",
    "in": "path",
    "required": True,
    "description": "The queue's slug; an unknown or malformed one answers 404.",
    "schema": SLUG,
}
TICKET_PARAM = {
    "name": "ticket_id",
    "in": "path",
    "required": True,
    "description": "`<queue slug>.<ticket number>`",
    "schema": TICKET_ID,
}
IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeating the key within 24 hours answers the first answer again.",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A JSON object with these properties; more may be added in later versions."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def const(value: str) -> Schema:
    return {"type": "string", "const": value}


def answer(
    description: str, schema: Schema | None = None, media: str = "application/json"
) -> Schema:
    out: Schema = {"description": description, "headers": REQUEST_ID_HEADER}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def json_body(schema: Schema, description: str) -> Schema:
    """An optional JSON body (an empty body counts as `{}`), at most 64 KiB."""
    return {
        "required": False,
        "description": description + " At most 64 KiB.",
        "content": {"application/json": {"schema": schema}},
    }


def errors(*codes: str) -> dict[str, Any]:
    """Error answers for these codes, one per status, each listing exactly its codes."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS_OF.get(code, 400), []).append(code)  # as ApiError.from_code
    out: dict[str, Any] = {}
    for status, group in sorted(by_status.items()):
        schema = obj(
            {
                "error": obj(
                    {"code": {"type": "string", "enum": group}, "message": {"type": "string"}}
                )
            }
        )
        listed = ", ".join(f"`{c}`" for c in group)
        out[str(status)] = answer(f"Error: {listed}.", schema)
    return out


def operation(
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    security: str | None = None,
    description: str | None = None,
) -> Schema:
    op: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    op["security"] = [{security: []}] if security else []
    return op
