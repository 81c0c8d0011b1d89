"""`Idempotency-Key` for the endpoints whose change is not already idempotent in its Lua script.

Join and call-next check and store their key inside their script (two racing retries still make
one change). Every other changing endpoint is wrapped here: a repeated key on the same method and
path within 24 hours gets the first successful answer again, status and body. Error answers are
not stored, so a retry after a failure really retries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.httpio import JSONResponse, idempotency_key
from server.services import services

TTL_S = 24 * 3600

Endpoint = Callable[[Request], Awaitable[Response]]


def replayable(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        key = idempotency_key(request)
        if key is None:
            return await endpoint(request)
        store = services(request).store
        # The credential is part of the name, so a replay never answers a caller who could not
        # have made the request; hashing keeps client text and secrets out of Redis key names.
        auth = request.headers.get("authorization", "")
        scope = f"{request.method} {request.url.path} {auth} {key}"
        name = hashlib.sha256(scope.encode()).hexdigest()
        stored = await store.remembered(name)
        if stored is not None:
            first = orjson.loads(stored)
            return JSONResponse(first["body"], first["status"])
        response = await endpoint(request)
        if 200 <= response.status_code < 300:
            body = orjson.loads(bytes(response.body)) if response.body else None
            answer = orjson.dumps({"status": response.status_code, "body": body})
            await store.remember(name, answer, TTL_S)
        return response

    wrapped.__name__ = endpoint.__name__
    wrapped.__doc__ = endpoint.__doc__
    return wrapped
