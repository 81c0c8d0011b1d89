"""The OpenAPI 3.1 document of the HTTP API, served at `/v1/openapi.json` and shown at `/docs`.

The document is assembled from small per-area modules of plain dicts: `queue_paths` (customer
and staff routes), `other_paths` (history, service, pages, docs), `schemas` (named schemas) and
`key_paths` (keys, the venue's queues), `common` (parameters, answers, and error answers
generated from error codes). To document a new
route, add its entry to the module of its area (or a new module listed in `PATH_MODULES`);
`tests/server/test_openapi.py` fails until every route of the app is in the document and the
document names no route the app lacks, and the schemathesis run checks the answers against it.
How-to for contributors: docs/openapi.md.
"""

from __future__ import annotations

import functools
from typing import Any

from server.openapi import key_paths, notify_paths, other_paths, queue_paths, shaping_paths
from server.openapi.schemas import SCHEMAS

PATH_MODULES = (queue_paths, shaping_paths, key_paths, notify_paths, other_paths)
VERSION = "1.0.0"


def _bearer(description: str) -> dict[str, str]:
    return {"type": "http", "scheme": "bearer", "description": description}


@functools.cache
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for module in PATH_MODULES:
        for path, operations in module.PATHS.items():
            clash = set(paths.get(path, {})) & set(operations)
            assert not clash, f"{path} {clash} documented twice"
            paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vqueue",
            "version": VERSION,
            "description": "A real-time virtual queue server. Live positions are pushed over "
            "the WebSocket `/v1/ws`, described in AsyncAPI in `docs/asyncapi.yaml`. Errors are "
            '`{"error": {"code", "message"}}`; every answer carries `X-Request-ID`.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "staffKey": _bearer("A staff key of the venue that owns the queue (`vqk_...`)."),
                "ticketToken": _bearer("The ticket token handed out at join."),
                "metricsToken": _bearer("`VQ_METRICS_TOKEN` (loopback clients need none)."),
            },
        },
    }
