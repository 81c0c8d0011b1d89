"""Every request's context: its `X-Request-ID`, its access log line and its HTTP counter.

A raw ASGI wrapper around the whole application (outside Starlette's error middleware, so a
500 carries the id too). The client's `X-Request-ID` is kept when it is 1-128 characters of
`[A-Za-z0-9._:-]`; anything else is replaced by a new random id. The access log line and the
`vqueue_http_requests_total` label name the route's template, never the raw path: a path can
carry whatever a client typed, and the template keeps the metric's label set small.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.logs import REQUEST_ID, REQUEST_ID_SCOPE_KEY
from server.metrics import HTTP_REQUESTS

log = logging.getLogger("vqueue.access")

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HEADER = b"x-request-id"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))
UNMATCHED = "<unmatched>"


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            given = bytes(value).decode("latin-1")
            if REQUEST_ID_RE.fullmatch(given):
                return given
            break
    return secrets.token_hex(16)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/v1/tickets/{ticket_id}`), set by the router."""
    route: Any = scope.get("route")
    if route is None:
        return UNMATCHED
    if isinstance(route, Mount):
        return route.path + "/{path}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestContext:
    def __init__(self, app: ASGIApp, access_log: bool, count: bool) -> None:
        self.app = app
        self.access_log = access_log
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        header = (HEADER, request_id.encode("latin-1"))
        status = 500  # if nothing is sent before an exception escapes

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        reset = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                self._record(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(reset)

    def _record(self, scope: Scope, status: int, elapsed_s: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        route = route_template(scope)
        if self.count:
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
        if self.access_log:
            duration_ms = round(elapsed_s * 1000, 2)
            log.info(
                "%s %s %s %.2fms",
                method,
                route,
                status,
                duration_ms,
                extra={"method": method, "route": route, "status": status, "ms": duration_ms},
            )
