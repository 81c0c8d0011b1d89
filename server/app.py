"""The Starlette application: routes, error answers, and the services' lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from server import (
    archiving,
    contacts,
    customers,
    history,
    keyroutes,
    limits,
    metrics,
    pages,
    pushroutes,
    shaping,
    staff,
)
from server.auth import KeyCache, TicketSigner
from server.config import Settings
from server.counters import Tally
from server.db import Database
from server.db.events import EventLog
from server.errors import ApiError, Unavailable
from server.fanout import Fanout
from server.guard import Guard
from server.httpio import JSONResponse, error_response
from server.notify import webhooks
from server.notify.setup import COMPANION_GROUPS, build_notifier
from server.openapi import docs as openapi_docs
from server.outbox import SENT, Outbox, runs_c_loop, use_c_loop
from server.persister import Persister
from server.queues import KnownQueues
from server.recovery import Recovery
from server.requestctx import RequestContext
from server.scheduler import Scheduler
from server.services import Services
from server.store import KeyRing, Store
from server.store.fence import Fence
from server.tasks import cancel_all
from server.webpush import load_vapid_key
from server.ws import WATCH_PATH, WatchEndpoint
from server.wsprotocol import WebSocketProtocol

log = logging.getLogger(__name__)

HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    400: "bad_request",
    413: "payload_too_large",
}


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """`{"ready"}` for anyone; the details (business volume) only for operators."""
    svc: Services = request.app.state.services
    redis_ok = await svc.store.ping()
    db_ok = await svc.db.ping()
    status = 200 if redis_ok and db_ok else 503
    if not metrics.operator_allowed(request, svc.settings):
        return JSONResponse({"ready": redis_ok and db_ok}, status)
    body: dict[str, object] = {
        "ready": redis_ok and db_ok,
        "redis": redis_ok,
        "postgres": db_ok,
        "watchers": svc.fanout.watcher_count,
        "frames_sent": SENT.value,
        "fanout_loop": "c" if runs_c_loop() else "python",
        "resyncs": svc.fanout.resyncs,
        "closes": close_counts(),
    }
    if svc.persister is not None:
        body["persistence"] = svc.persister.status()
    if svc.notifier is not None:
        body["notifications"] = svc.notifier.status()
    return JSONResponse(body, status)


CLOSE_CAUSES = (
    "stuck_outbox",
    "backlog_overflow",
    "ping_timeout",
    "drain_timeout",
    "close_timeout",
)


def close_counts() -> dict[str, int]:
    """WebSockets this process cut because the client stopped keeping up, by which path."""
    found = Outbox.closes + WebSocketProtocol.closes
    return {cause: found[cause] for cause in CLOSE_CAUSES}


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.code == "rate_limited":
        limits.count_rate_limited()
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def on_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unavailable)
    return error_response(503, exc.code, exc.message, headers={"Retry-After": "1"})


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def on_disconnect(request: Request, exc: Exception) -> Response:
    # The client left mid-body: nobody reads this answer, and it is not our error to log.
    log.debug("client left during %s %s", request.method, request.url.path)
    return error_response(400, "bad_request", "the client disconnected")


async def on_crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "something went wrong on our side")


async def build_services(
    settings: Settings, redis_launches: Callable[[], int] | None = None
) -> Services:
    """Connect to Redis and PostgreSQL and start the fan-out (urls must be set by now).
    `redis_launches`: how many times the embedded Redis was launched, for the fence."""
    assert settings.redis_url is not None and settings.database_url is not None
    assert settings.secret_key is not None
    store = Store(
        settings.redis_url.reveal(), settings.redis_prefix, cluster=settings.redis_cluster
    )
    db = await Database.connect(settings.database_url.reveal())
    fanout = Fanout(store, settings.flush_ms, settings.stuck_close_s, settings.resync_check_s)
    fanout.seed_eta = history.eta_seeder(EventLog(db))
    await fanout.start()
    signer = TicketSigner(
        settings.secret_key.reveal(), await KeyRing(store).sha256_tokens_since_ms()
    )
    fanout.sign = signer.sign
    recovery = Recovery(store, db)
    if redis_launches is not None:
        store.fence = Fence(redis_launches, recovery.check)
    companions = COMPANION_GROUPS if settings.notify else ()
    persister = Persister(store, db, recovery, batch=settings.persist_batch, companions=companions)
    fanout.on_quote = persister.quotes.record
    await persister.start()
    svc = Services(settings, store, db, fanout, signer, KeyCache(), recovery.rebuild, persister)
    svc.vapid = await load_vapid_key(settings, db)
    if settings.notify:
        svc.notifier = build_notifier(settings, store, db, svc.vapid)
        await svc.notifier.start()
    svc.known_queues = KnownQueues(db)
    svc.scheduler = Scheduler(store)
    await svc.scheduler.start()
    return svc


class VqueueApp(Starlette):
    """Starlette with the request context outermost, around its own error middleware.

    The watch socket (`WATCH_PATH`) goes from the request context straight to its endpoint:
    the middleware and the router have nothing to do for it (the endpoint checks its own
    Origin; server.guard and CORS let WebSockets through) and each would keep one more
    coroutine frame alive for as long as the socket is open, ten thousand times over.
    """

    def __init__(self, settings: Settings, watch: ASGIApp, **kwargs: Any) -> None:
        self.settings = settings
        self.watch = watch
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return RequestContext(
            _WatchFirst(super().build_middleware_stack(), self.watch),
            access_log=self.settings.access_log,
            count=self.settings.metrics,
        )


class _WatchFirst:
    """`WATCH_PATH` WebSockets to the watch endpoint, everything else to the Starlette stack."""

    __slots__ = ("app", "watch")

    def __init__(self, app: ASGIApp, watch: ASGIApp) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WATCH_PATH:
            await self.watch(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def close_services(svc: Services) -> None:
    if svc.scheduler is not None:
        await svc.scheduler.stop()
    if svc.notifier is not None:
        await svc.notifier.stop()
    if svc.persister is not None:
        await svc.persister.stop()
    await svc.fanout.stop()
    await svc.store.close()
    await svc.db.close()


GC_THRESHOLDS = (250_000, 4, 20)  # the cyclic collector's, after start-up (default 700, 10, 10)


def create_app(settings: Settings, redis_launches: Callable[[], int] | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = await build_services(settings, redis_launches)
        Tally.enabled = settings.metrics
        use_c_loop(not settings.pure_python)
        svc.metrics = metrics.build_registry(svc) if settings.metrics else None
        app.state.services = svc
        following = keyroutes.start_following(svc.store, svc.keys, svc.fanout.close_views_of_key)
        # Everything allocated so far lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise walk it while 10k sockets wait for frames.
        gc.freeze()
        # Each socket leaves long-lived objects behind; with the default thresholds a connect
        # storm of 10,000 ran 27 full passes over all of them (5.3 s of 10; BENCHMARKS.md,
        # "Profile"). Young passes every 250,000 allocations instead of 700: in a storm each
        # one also walks every half-opened connection's objects (thousands at once), so fewer
        # passes walk them fewer times (0.12 s of passes per 5,000 reconnects, not 0.27 at
        # 50,000). A middle pass every 4 young ones keeps it to a million allocations' worth,
        # as before; full passes stay rare; cyclic garbage goes within millions of allocations.
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await cancel_all([following])  # it reads a Redis subscription (server.tasks)
            await close_services(svc)

    def services_of(scope: Scope) -> Services:
        found: Services = scope["app"].state.services
        return found

    watch = WatchEndpoint(services_of)
    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *metrics.ROUTES,
        *customers.ROUTES,
        *contacts.ROUTES,
        *staff.ROUTES,
        *shaping.ROUTES,
        *keyroutes.ROUTES,
        *archiving.ROUTES,
        *webhooks.ROUTES,
        *history.ROUTES,
        *pushroutes.ROUTES,
        *pages.ROUTES,
        *openapi_docs.ROUTES,
        WebSocketRoute(WATCH_PATH, watch),  # reached through _WatchFirst; listed for the docs
    ]
    middleware = [Middleware(Guard, settings=settings)]
    if settings.allowed_origins:
        # Venues embedding the JS client on their own site call the API cross-origin.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                max_age=600,
            )
        )
    return VqueueApp(
        settings,
        watch,
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ApiError: on_api_error,
            Unavailable: on_unavailable,
            HTTPException: on_http_exception,
            ClientDisconnect: on_disconnect,
            Exception: on_crash,
        },
    )
