"""The document's entries for history, service, page and documentation routes
(`server.history`, `server.app`, `server.metrics`, `server.pages`, `server.openapi.docs`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import (
    QUEUE_PARAM,
    STAFF_CODES,
    STORE_CODES,
    answer,
    errors,
    obj,
    operation,
    ref,
)
from server.openapi.queue_paths import STAFF_KEY

STATIC_TYPES = ("text/css", "text/javascript", "application/javascript", "application/json")


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, **schema}


def _text(description: str, media: str) -> dict[str, Any]:
    return answer(description, {"type": "string"}, media)


def _history(summary: str, schema: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return operation(
        summary,
        "history",
        {
            "200": answer("From PostgreSQL: answers while Redis is away.", ref(schema)),
            **errors("invalid_query", *STAFF_CODES, "queue_not_found", *STORE_CODES),
        },
        params=[QUEUE_PARAM, *params],
        security=STAFF_KEY,
    )


TIME_SCHEMA = {
    "schema": {"type": "string"},
    "example": "2026-12-01T09:00:00Z",
}
TIME_FORMAT = "ISO 8601 (UTC unless it says otherwise) or Unix seconds, within years 1-9999."
INT64 = {"type": "integer", "maximum": 2**63 - 1}

_page_answers = {
    "200": _text("The page (it loads its data from the API).", "text/html"),
    "404": _text("The same page for a malformed slug: it says no such queue.", "text/html"),
}


def _page(summary: str) -> dict[str, Any]:
    return {"get": operation(summary, "pages", _page_answers, params=[QUEUE_PARAM])}


PATHS: dict[str, dict[str, Any]] = {
    "/v1/queues/{queue}/events": {
        "get": _history(
            "A queue's event log, oldest first",
            "Events",
            [
                _query("after_seq", "Events after this seq.", {"schema": INT64 | {"minimum": 0}}),
                _query(
                    "limit",
                    "At most this many (default 100; more than 1000 counts as 1000).",
                    {"schema": INT64 | {"minimum": 1}},
                ),
            ],
        )
    },
    "/v1/queues/{queue}/stats": {
        "get": _history(
            "A queue's statistics over a window (default: the last 24 hours)",
            "Stats",
            [
                _query("since", f"Start of the window: {TIME_FORMAT}", TIME_SCHEMA),
                _query("until", f"End of the window (default: now): {TIME_FORMAT}", TIME_SCHEMA),
            ],
        )
    },
    "/v1/queues/{queue}/board": {
        "get": operation(
            "Who is being served at each counter (the display board)",
            "pages",
            {"200": answer("The board.", ref("Board")), **errors("queue_not_found", *STORE_CODES)},
            params=[QUEUE_PARAM],
        )
    },
    "/v1/queues/{queue}/qr.svg": {
        "get": operation(
            "A QR code of the queue's customer page",
            "pages",
            {
                "200": _text("An SVG image.", "image/svg+xml"),
                **errors("queue_not_found", *STORE_CODES),
            },
            params=[QUEUE_PARAM],
        )
    },
    "/q/{queue}": _page("The customer page"),
    "/staff/{queue}": _page("The staff console"),
    "/board/{queue}": _page("The display board"),
    "/admin": {
        "get": operation(
            "The venue's admin page (the admin key is entered on the page)",
            "pages",
            {"200": _text("The page.", "text/html")},
        )
    },
    "/static/vqueue.js": {
        "get": operation(
            "The browser client library (an ES module)",
            "pages",
            {"200": _text("JavaScript.", "text/javascript")},
        )
    },
    "/static/{path}": {
        "get": operation(
            "The pages' static files",
            "pages",
            {
                "200": {
                    "description": "The file.",
                    "headers": answer("")["headers"],
                    "content": {t: {"schema": {"type": "string"}} for t in STATIC_TYPES},
                },
                **errors("not_found"),
            },
            params=[{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
        )
    },
    "/healthz": {
        "get": operation(
            "Liveness: 200 while the process runs",
            "service",
            {"200": answer("Alive.", obj({"status": {"type": "string", "const": "ok"}}))},
        )
    },
    "/readyz": {
        "get": operation(
            "Readiness: Redis and PostgreSQL reachable",
            "service",
            {
                "200": answer("Ready.", ref("Readiness")),
                "503": answer("Not ready: a store is unreachable.", ref("Readiness")),
            },
            security="metricsToken",
            description='`{"ready": bool}` to anyone; the details (stores, watchers, frames, '
            "resyncs, persistence) only to the clients `/metrics` serves.",
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics",
            "service",
            {
                "200": _text("Prometheus text format 0.0.4.", "text/plain"),
                **errors("unauthorized", "not_found"),
            },
            security="metricsToken",
            description="Open to loopback clients, or with `Authorization: Bearer` and the "
            "`VQ_METRICS_TOKEN`; 404 when `VQ_METRICS=false`.",
        )
    },
    "/v1/openapi.json": {
        "get": operation(
            "This document", "service", {"200": answer("OpenAPI 3.1.", {"type": "object"})}
        )
    },
    "/docs": {
        "get": operation(
            "This document, rendered (Swagger UI, served from the package)",
            "service",
            {"200": _text("An HTML page.", "text/html")},
        )
    },
    "/docs/assets/{path}": {
        "get": operation(
            "Swagger UI's own files",
            "service",
            {
                "200": {
                    "description": "The file.",
                    "headers": answer("")["headers"],
                    "content": {
                        t: {"schema": {"type": "string"}}
                        for t in (*STATIC_TYPES, "text/html", "image/png")
                    },
                },
                **errors("not_found"),
            },
            params=[{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
        )
    },
}
