"""`/v1/openapi.json`, and `/docs`: Swagger UI from the `swagger-ui-py` package's own files
(no CDN), started by `server/static/docs.js` so the page needs no inline script."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from server.httpio import JSONResponse
from server.openapi import document
from server.pages import NO_CACHE, STATIC_DIR


def swagger_ui_dir() -> Path:
    """The Swagger UI files that `swagger-ui-py` ships, found without importing its framework
    adapters."""
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations, "swagger-ui-py is missing"
    return Path(next(iter(spec.submodule_search_locations))) / "static"


# Swagger UI sets styles from script and shows inline SVG icons: allow those, nothing remote.
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document(), headers={"Access-Control-Allow-Origin": "*"})


async def docs_page(request: Request) -> Response:
    headers = {**NO_CACHE, "Content-Security-Policy": DOCS_POLICY}
    return FileResponse(STATIC_DIR / "docs.html", headers=headers, media_type="text/html")


ROUTES: list[Any] = [
    Route("/v1/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
    Mount("/docs/assets", StaticFiles(directory=swagger_ui_dir()), name="docs_assets"),
]
