"""`GET /v1/push/key`: the deployment's VAPID public key, what a page passes to
`pushManager.subscribe` as `applicationServerKey` (base64url of the uncompressed P-256 point)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import Unavailable
from server.httpio import JSONResponse
from server.services import services


async def push_key(request: Request) -> Response:
    key = services(request).vapid
    if key is None:  # not loaded: PostgreSQL was down when the node started
        raise Unavailable("the push key is not loaded yet")
    # The key changes only when an operator replaces it: a browser may keep it for an hour.
    headers = {"Cache-Control": "public, max-age=3600"}
    return JSONResponse({"public_key": key.public_key}, headers=headers)


ROUTES: list[Any] = [Route("/v1/push/key", push_key, methods=["GET"])]
