"""Web Push out of this node: the deployment's VAPID key (configured, or generated once and kept
in PostgreSQL) and `WebPushSender`, which encrypts a payload for one subscription and POSTs it
to the subscription's push service (RFC 8030), saying what came of it.

The message formats and the cryptography are in `protocol/webpush.py`; this is the I/O.
"""

from __future__ import annotations

import logging
import time

import httpx

from protocol.webpush import (
    PushOutcome,
    PushSubscription,
    VapidKey,
    Verdict,
    encrypt,
    is_topic,
    outcome,
)
from server.config import Settings
from server.db import Database
from server.db.vapid import keep_vapid_key
from server.netcheck import url_problem

log = logging.getLogger(__name__)

# A push service answers fast or not at all; the notifier retries on no answer.
SEND_TIMEOUT_S = 10.0


async def load_vapid_key(settings: Settings, db: Database) -> VapidKey:
    """`VQ_VAPID_PRIVATE_KEY`, else the key PostgreSQL keeps (the first node generates it)."""
    if settings.vapid_private_key is not None:
        return VapidKey.from_text(settings.vapid_private_key.reveal())
    stored = await keep_vapid_key(db, VapidKey.generate().raw())
    return VapidKey.from_raw(stored)


class WebPushSender:
    """Sends one encrypted push message per call; one instance (and connection pool) per node."""

    def __init__(
        self,
        key: VapidKey,
        subject: str,
        *,
        allow_private: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.key = key
        self.subject = subject
        self.allow_private = allow_private
        # trust_env: SSL_CERT_FILE and HTTPS_PROXY apply, as for any egress an operator runs.
        self._client = client or httpx.AsyncClient(
            timeout=SEND_TIMEOUT_S,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self,
        subscription: PushSubscription,
        payload: bytes,
        *,
        ttl_s: int,
        topic: str | None = None,
    ) -> PushOutcome:
        """Encrypt `payload` for `subscription` and hand it to its push service. `ttl_s` is how
        long the service may hold it for an offline browser; a `topic` replaces an undelivered
        message with the same topic. The payload carries the caller's delivery id (dedup)."""
        if topic is not None and not is_topic(topic):
            raise ValueError("a push topic is 1 to 32 base64url characters")
        # Checked when the contact was given, and again now: DNS may have changed since.
        problem = await url_problem(
            subscription.endpoint, https_only=True, allow_private=self.allow_private
        )
        if problem is not None:
            return PushOutcome(Verdict.FAILED, detail=f"the endpoint {problem}")
        now_s = time.time()
        headers = {
            "Authorization": self.key.authorization(subscription.origin, self.subject, now_s),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(max(0, int(ttl_s))),
            "Urgency": "high",
        }
        if topic is not None:
            headers["Topic"] = topic
        body = encrypt(payload, subscription)
        try:
            response = await self._client.post(subscription.endpoint, content=body, headers=headers)
        except httpx.TimeoutException:
            return PushOutcome(Verdict.RETRY, detail="no answer in time")
        except httpx.TransportError as exc:
            return PushOutcome(Verdict.RETRY, detail=f"connection failed: {type(exc).__name__}")
        result = outcome(response.status_code, response.headers.get("retry-after"), time.time())
        log.debug("push to %s: %s", subscription.host, result.verdict.value)
        return result
