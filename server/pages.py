"""The pages people use: the customer page, the staff console, the display board and the admin
page (`/admin`), their static files, the browser client (`/static/vqueue.js`), the join QR code
and the board's JSON.

The pages are plain HTML and ES modules from `server/static/` (no build step); all their data
comes from the public HTTP API and the WebSocket, so the pages hold no server-side state.
"""

from __future__ import annotations

import asyncio
import functools
import io
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from protocol.names import is_slug, ticket_id
from protocol.ticket import TicketRecord
from server.httpio import JSONResponse
from server.queues import summary
from server.services import services

STATIC_DIR = Path(str(resources.files("server") / "static"))
CLIENT_JS = Path(str(resources.files("protocol") / "js" / "vqueue.js"))
# A finished ticket stays on the board beside its counter for this long after it was called.
BOARD_RECENT_MS = 3600 * 1000
# Revalidate every time (a 304 is cheap): a new release must reach open pages on their next load.
NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
HOST_RE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _page_headers(request: Request, framable: bool) -> dict[str, str]:
    # Older Safari does not count ws:// of our own host as 'self': name it, if it looks sane.
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if HOST_RE.fullmatch(host) else ""
    policy = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"connect-src 'self'{sockets}; worker-src 'self'; base-uri 'none'; form-action 'none'"
        + ("" if framable else "; frame-ancestors 'none'")
    )
    return {**NO_CACHE, "Content-Security-Policy": policy, "Referrer-Policy": "same-origin"}


def _page(filename: str, framable: bool) -> Any:
    async def endpoint(request: Request) -> Response:
        # An impossible slug gets the page too (it says "no such queue"), with a 404 status.
        status = 200 if is_slug(request.path_params["queue"]) else 404
        headers = _page_headers(request, framable)
        return FileResponse(STATIC_DIR / filename, status, headers, media_type="text/html")

    endpoint.__name__ = filename.removesuffix(".html") + "_page"
    return endpoint


async def admin_page(request: Request) -> Response:
    """The venue's admin page; the key is entered on the page, the data come from the API."""
    headers = _page_headers(request, framable=False)
    return FileResponse(STATIC_DIR / "admin.html", 200, headers, media_type="text/html")


async def client_js(request: Request) -> Response:
    # Public and credential-free: venues may import the module from pages on their own sites.
    headers = {**NO_CACHE, "Access-Control-Allow-Origin": "*"}
    return FileResponse(CLIENT_JS, headers=headers, media_type="text/javascript")


async def service_worker(request: Request) -> Response:
    # Served under /q/ so that its scope covers every customer page (a worker's scope is at
    # most its own folder): it shows Web Push notifications with the page closed.
    return FileResponse(STATIC_DIR / "sw.js", headers=NO_CACHE, media_type="text/javascript")


class _Static(StaticFiles):
    def file_response(
        self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NO_CACHE)
        return response


@functools.lru_cache(maxsize=256)
def qr_svg(url: str) -> bytes:
    """A QR code of `url` as a scalable SVG (no width/height, so CSS sizes it)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out, kind="svg", border=2, xmldecl=False, omitsize=True, title=url, nl=False
    )
    return out.getvalue()


async def join_qr(request: Request) -> Response:
    queue = request.path_params["queue"]
    await summary(services(request), queue)  # 404 for an unknown queue
    # The configured public address, not the Host header: a forged Host must not reach a poster.
    public = services(request).settings.public_url
    url = f"{public}/q/{queue}" if public else str(request.url_for("customer_page", queue=queue))
    headers = {"Cache-Control": "public, max-age=300"}
    return Response(qr_svg(url), media_type="image/svg+xml", headers=headers)


async def board(request: Request) -> Response:
    """Public: who is being served at each counter, and how many wait (for the display board)."""
    svc = services(request)
    queue = request.path_params["queue"]
    info = await summary(svc, queue)
    counters, called = await asyncio.gather(svc.store.counters(queue), svc.store.called_list(queue))
    tickets: dict[int, TicketRecord] = dict(called)
    missing = [n for n in counters.values() if n not in tickets]  # finished since their call
    views = await asyncio.gather(*(svc.store.ticket(queue, n) for n in missing))
    for number, view in zip(missing, views, strict=True):
        if view is not None:
            tickets[number] = TicketRecord(
                view.status, view.nonce, view.joined_ms, view.name, view.counter, view.called_ms
            )
    shown: list[tuple[str | None, int]] = list(counters.items())
    shown += [(None, n) for n, t in called if not t.counter]  # called without a counter
    entries = _board_entries(queue, shown, tickets, int(time.time() * 1000) - BOARD_RECENT_MS)
    return JSONResponse({**info, "counters": entries}, headers={"Cache-Control": "no-store"})


def _board_entries(
    queue: str,
    shown: list[tuple[str | None, int]],
    tickets: dict[int, TicketRecord],
    since_ms: int,
) -> list[dict[str, Any]]:
    """The latest call first. A counter shows its last call while that ticket is being served
    or was called recently; a call to no counter only while recent (staff may never finish it)."""
    entries = []
    for counter, number in shown:
        t = tickets.get(number)
        if t is None:
            continue
        recent = (t.called_ms or 0) >= since_ms
        if not recent and (counter is None or t.status != "called"):
            continue
        entries.append(
            {
                "counter": counter,
                "ticket_id": ticket_id(queue, number),
                "number": number,
                "status": t.status,
                "called_at_ms": t.called_ms,
            }
        )
    entries.sort(key=lambda e: int(e["called_at_ms"] or 0), reverse=True)
    return entries


ROUTES: list[Any] = [
    Route("/q/sw.js", service_worker),
    Route("/q/{queue}", _page("customer.html", framable=True), name="customer_page"),
    Route("/staff/{queue}", _page("staff.html", framable=False)),
    Route("/board/{queue}", _page("board.html", framable=True)),
    Route("/admin", admin_page),
    Route("/static/vqueue.js", client_js),
    Mount("/static", _Static(directory=STATIC_DIR), name="static"),
    Route("/v1/queues/{queue}/qr.svg", join_qr, methods=["GET"]),
    Route("/v1/queues/{queue}/board", board, methods=["GET"]),
]
