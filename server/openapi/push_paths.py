"""The document's entries for Web Push: the deployment's VAPID key (`server.pushroutes`) and
the customer page's service worker (`server.pages`)."""

from __future__ import annotations

from typing import Any

from server.openapi.common import STORE_CODES, answer, errors, obj, operation

PUSH_KEY = obj(
    {
        "public_key": {
            "type": "string",
            "pattern": "^B[A-Za-z0-9_-]{86}$",
            "description": "The VAPID public key: base64url (no padding) of the uncompressed "
            "P-256 point, what `pushManager.subscribe` takes as `applicationServerKey`.",
        }
    }
)

PATHS: dict[str, dict[str, Any]] = {
    "/v1/push/key": {
        "get": operation(
            "The deployment's Web Push (VAPID) public key",
            "customers",
            {"200": answer("One key for the whole deployment.", PUSH_KEY), **errors(*STORE_CODES)},
            description="Set by `VQ_VAPID_PRIVATE_KEY`, else generated once and kept in "
            "PostgreSQL. Browsers subscribed with it keep working only while it stays the same.",
        )
    },
    "/q/sw.js": {
        "get": operation(
            "The customer page's service worker",
            "pages",
            {
                "200": answer(
                    "Shows Web Push notifications; its scope is `/q/`.",
                    {"type": "string"},
                    "text/javascript",
                )
            },
        )
    },
}
