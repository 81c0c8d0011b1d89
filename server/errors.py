"""Errors the server turns into answers.

Hierarchy::

    ServerError                 root of everything the server raises on purpose
    ├── ApiError                a 4xx answer with a contract error code
    │   └── RateLimited         429 with Retry-After
    └── Unavailable             a store is unreachable: 503, the client may retry

`ApiError.from_code` maps a code (as Lua scripts return them) to its HTTP status, so each code
has one status everywhere. Anything else raised is a bug: 500 with no internals, logged.
"""

from __future__ import annotations

import math

STATUS_OF_CODE = {
    "bad_request": 400,
    "invalid_json": 400,
    "invalid_body": 400,
    "invalid_slug": 400,
    "invalid_idempotency_key": 400,
    "invalid_query": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "queue_not_found": 404,
    "ticket_not_found": 404,
    "method_not_allowed": 405,
    "queue_closed": 409,
    "queue_paused": 409,
    "ticket_finished": 409,
    "ticket_not_called": 409,
    "ticket_waiting": 409,
    "queue_full": 409,
    "queue_not_empty": 409,
    "queue_archived": 409,
    "bad_priority": 400,
    "bad_position": 400,
    "bad_settings": 400,
    "bad_ticket": 400,
    "forbidden_origin": 403,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "overloaded": 503,
    "webhook_not_found": 404,
    "delivery_not_found": 404,
}

MESSAGE_OF_CODE = {
    "queue_not_found": "no such queue",
    "ticket_not_found": "no such ticket",
    "unauthorized": "missing or invalid credentials",
    "forbidden": "this key belongs to another venue",
    "queue_closed": "the queue is closed",
    "queue_paused": "the queue is paused",
    "ticket_finished": "the ticket is already finished",
    "ticket_not_called": "the ticket has not been called",
    "ticket_waiting": "the ticket is already waiting in line",
    "queue_full": "the queue has reached its maximum number of waiting tickets",
    "queue_not_empty": "tickets wait in this queue (?force=true removes them first)",
    "queue_archived": "this queue is archived",
    "payload_too_large": "request body over 64 KiB",
    "idempotency_key_reused": "this Idempotency-Key was used for another request",
    "webhook_not_found": "no such webhook",
    "delivery_not_found": "no such dead delivery of this webhook",
}


class ServerError(Exception):
    """Root of the errors the server raises on purpose."""


class ApiError(ServerError):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    @classmethod
    def from_code(cls, code: str, message: str | None = None) -> ApiError:
        status = STATUS_OF_CODE.get(code, 400)
        return cls(status, code, message or MESSAGE_OF_CODE.get(code, code.replace("_", " ")))


class RateLimited(ApiError):
    """Over a rate limit; `retry_after_s` says when the next attempt would be counted."""

    def __init__(self, retry_after_s: float) -> None:
        wait_s = max(1, math.ceil(retry_after_s))
        message = f"too many requests; retry in {wait_s} s"
        super().__init__(429, "rate_limited", message, {"Retry-After": str(wait_s)})


class Unavailable(ServerError):
    """Redis or PostgreSQL could not be reached; answered with 503."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
