"""`Idempotency-Key`: the first answer is kept for 24 h and bound to the request it answered.

A key names one request: its method, path, credential and body (the request's fingerprint). The
same key on the same request gets the first answer again; on any other request it gets 422
`idempotency_key_reused`, never the first request's answer (which may hold a ticket's token).

Join and call-next check and store their key inside their script (two racing retries still make
one change). Every other changing endpoint is wrapped here. Error answers are not stored, so a
retry after a failure really retries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.errors import ApiError
from server.httpio import JSONResponse, idempotency_key, read_body
from server.services import services

TTL_S = 24 * 3600

Endpoint = Callable[[Request], Awaitable[Response]]


def fingerprint(request: Request, body: bytes) -> str:
    """What makes two requests the same request: method, path, credential and body."""
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.headers.get("authorization", "")):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return digest.hexdigest()


def replayable(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        key = idempotency_key(request)
        if key is None:
            return await endpoint(request)
        store = services(request).store
        fp = fingerprint(request, await read_body(request))
        # Named by the key alone, so another request with it is seen (and refused); hashed so
        # that client text never becomes part of a Redis key name.
        name = hashlib.sha256(key.encode()).hexdigest()
        stored = await store.remembered(name)
        if stored is not None:
            first = orjson.loads(stored)
            if first.get("fp") != fp:
                raise ApiError.from_code("idempotency_key_reused")
            return JSONResponse(first["body"], first["status"])
        response = await endpoint(request)
        if 200 <= response.status_code < 300:
            body = orjson.loads(bytes(response.body)) if response.body else None
            answer = orjson.dumps({"fp": fp, "status": response.status_code, "body": body})
            await store.remember(name, answer, TTL_S)
        return response

    wrapped.__name__ = endpoint.__name__
    wrapped.__doc__ = endpoint.__doc__
    return wrapped
