"""An ASGI middleware in front of every HTTP route: the concurrency cap and the Origin check.

- At most `VQ_HTTP_MAX_CONCURRENT` HTTP requests run at once on a node (uvicorn's own limit
  also counts WebSockets, which must not be refused by a busy HTTP side): 503 `overloaded`.
- A request that changes anything (not GET / HEAD / OPTIONS) and carries an `Origin` outside
  the allowed ones gets 403 `forbidden_origin`: another site cannot make its visitors join.
- `Range` is ignored (HTTP allows it): the files are small, and Starlette answers a malformed
  range in plain text, outside the contract's error shape.
WebSockets pass straight through; their handshake is checked in server.ws.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from server.config import Settings
from server.origins import origin_allowed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _refuse(send: Send, status: int, code: str, message: str, retry: bool = False) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.settings.http_max_concurrent
        if cap is not None and self.active >= cap:
            await _refuse(send, 503, "overloaded", "too many requests in progress", retry=True)
            return
        if scope["method"] not in SAFE_METHODS and not self._origin_ok(scope):
            await _refuse(send, 403, "forbidden_origin", "requests from this origin are refused")
            return
        if any(name == b"range" for name, _ in scope["headers"]):
            headers = [(n, v) for n, v in scope["headers"] if n != b"range"]
            scope = {**scope, "headers": headers}
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    def _origin_ok(self, scope: Scope) -> bool:
        headers = {}
        for name, value in scope["headers"]:
            if name in (b"origin", b"host"):
                headers[name.decode()] = value.decode("latin-1")
        return origin_allowed(headers, self.settings, own_always=True)
