"""Reading request bodies and writing JSON answers, with the contract's limits and errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from server.errors import ApiError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY_CHARS = 255
IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
JSON_TYPES = ("application/json",)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


async def read_body(request: Request) -> bytes:
    """The body, refusing more than 64 KiB whether or not Content-Length says so.

    A browser's body (the request carries `Origin`) must be JSON: 415 after the size check and
    before any parsing, the contract's precedence. The body is kept in the scope, so a wrapper
    that read it (idempotency) and the endpoint see the same bytes.
    """
    cached = request.scope.get("vq.body")
    if cached is not None:
        assert isinstance(cached, bytes)
        return cached
    body = await _read_limited(request)
    if body and "origin" in request.headers and not is_json(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "a browser's body must be application/json")
    request.scope["vq.body"] = body
    return body


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in JSON_TYPES


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_request", "Content-Length is not a number")
        if int(declared) > MAX_BODY_BYTES:
            raise ApiError.from_code("payload_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError.from_code("payload_too_large")
            chunks.append(chunk)
    except ClientDisconnect:  # the connection dropped mid-body: nothing to act on, no crash
        log.debug("client left during %s %s", request.method, request.url.path)
        raise ApiError(400, "bad_request", "the request body was cut short") from None
    return b"".join(chunks)


async def read_object(request: Request) -> dict[str, Any]:
    """A JSON object body; an empty body counts as `{}`."""
    body = await read_body(request)
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return data


def optional_text(data: dict[str, Any], field: str, max_chars: int) -> str | None:
    """A short, printable, optional string field; None when absent, null or blank."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_body", f"'{field}' must be a string")
    value = value.strip()
    if len(value) > max_chars:
        raise ApiError(400, "invalid_body", f"'{field}' is longer than {max_chars} characters")
    if any(not ch.isprintable() for ch in value):
        raise ApiError(400, "invalid_body", f"'{field}' contains control characters")
    return value or None


def idempotency_key(request: Request, min_chars: int = 1) -> str | None:
    """The request's `Idempotency-Key`: `min_chars`-255 characters of [A-Za-z0-9_.:-]."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if len(key) < min_chars or not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be {min_chars}-255 characters of A-Z a-z 0-9 _ . : -",
        )
    return key
