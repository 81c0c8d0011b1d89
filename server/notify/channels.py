"""The ways out: webhooks and the SMS webhook (signed POSTs), email (SMTP), Web Push.

Each channel sends one leased delivery and says what came of it (`Sent`): delivered, retry
(no answer, a refusal that may pass), dropped (the target is gone for good) or failed (this
will never work: not retried). Nothing here logs a target: addresses, numbers and push
endpoints identify people.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import httpx
import orjson

from server.db.deliveries import Due
from server.netcheck import url_problem
from server.notify.plan import email_bodies, notice_text, push_payload, signed_headers

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 10.0  # contract: a webhook that has not answered in 10 s is retried
SMTP_TIMEOUT_S = 10.0
SMTP_CONNECTIONS = 4  # reused connections per node: a message does not pay a handshake
PUSH_TTL_S = 15 * 60


@dataclass(frozen=True, slots=True)
class Sent:
    status: str  # delivered | retry | dropped | failed
    error: str | None = None
    retry_after_s: float | None = None


DELIVERED = Sent("delivered")


class Channel(Protocol):
    async def send(self, due: Due) -> Sent: ...

    async def aclose(self) -> None: ...


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=ANSWER_TIMEOUT_S,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


async def _post_signed(
    client: httpx.AsyncClient, url: str, secret: str, msg_id: str, body: bytes
) -> Sent:
    headers = signed_headers(secret, msg_id, int(time.time()), body)
    try:
        answer = await client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return Sent("retry", "no answer within 10 s")
    except httpx.HTTPError as exc:
        return Sent("retry", f"connection failed: {type(exc).__name__}")
    if 200 <= answer.status_code < 300:
        return DELIVERED
    return Sent("retry", f"HTTP {answer.status_code}")


class WebhookChannel:
    """Standard Webhooks POSTs; the URL is checked again at each attempt (DNS may change)."""

    def __init__(self, client: httpx.AsyncClient, allow_private: bool) -> None:
        self.client = client
        self.allow_private = allow_private

    async def send(self, due: Due) -> Sent:
        if due.url is None or due.secret is None:
            return Sent("dropped", "the webhook was deleted")
        problem = await url_problem(due.url, https_only=False, allow_private=self.allow_private)
        if problem is not None:
            return Sent("retry", f"the URL {problem}")
        return await _post_signed(
            self.client, due.url, due.secret, due.id, orjson.dumps(due.payload)
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class SmsChannel:
    """`VQ_SMS_WEBHOOK_URL`: POST `{"to", "text"}` signed with `VQ_SMS_WEBHOOK_SECRET`."""

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self.client = client
        self.url = url
        self.secret = secret

    async def send(self, due: Due) -> Sent:
        if due.target is None:
            return Sent("dropped", "no number")
        _, text = notice_text(due.payload)
        body = orjson.dumps({"to": due.target, "text": text})
        return await _post_signed(self.client, self.url, self.secret, due.id, body)

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass(frozen=True, slots=True)
class SmtpServer:
    hostname: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(
            parts.hostname or "localhost",
            parts.port or (465 if tls else 587),
            tls,
            None if parts.username is None else unquote(parts.username),
            None if parts.password is None else unquote(parts.password),
        )


class EmailChannel:
    """Plain text and HTML, from the queue's name; Message-ID = the delivery id. A few SMTP
    connections are kept open and shared, one message at a time on each."""

    def __init__(self, server: SmtpServer, mail_from: str, domain: str) -> None:
        self.server = server
        self.mail_from = mail_from
        self.domain = domain
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(SMTP_CONNECTIONS)

    def message(self, due: Due) -> EmailMessage:
        subject, plain, markup = email_bodies(due.payload)
        msg = EmailMessage()
        msg["From"] = email.utils.formataddr((str(due.payload["queue_name"]), self.mail_from))
        msg["To"] = due.target or ""
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{due.id}@{self.domain}>"
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(plain)
        msg.add_alternative(markup, subtype="html")
        return msg

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.server
        client = aiosmtplib.SMTP(
            hostname=s.hostname,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.use_tls,
            start_tls=None if not s.use_tls else False,
            timeout=SMTP_TIMEOUT_S,
        )
        await client.connect()
        return client

    async def send(self, due: Due) -> Sent:
        if due.target is None:
            return Sent("dropped", "no address")
        msg = self.message(due)
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                await client.send_message(msg, sender=self.mail_from, recipients=[due.target])
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._keep(client)
                codes = [r.code for r in exc.recipients]
                if all(500 <= c < 600 for c in codes):
                    return Sent("failed", f"recipient refused ({codes[0]})")
                return Sent("retry", f"recipient deferred ({codes[0] if codes else '?'})")
            except aiosmtplib.SMTPResponseException as exc:
                self._keep(client)
                return Sent("retry", f"SMTP {exc.code}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await self._discard(client)
                return Sent("retry", f"SMTP connection failed: {type(exc).__name__}")
            self._keep(client)
        return DELIVERED

    def _keep(self, client: aiosmtplib.SMTP | None) -> None:
        if client is not None and client.is_connected:
            self._idle.append(client)

    async def _discard(self, client: aiosmtplib.SMTP | None) -> None:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), 2.0)


class PushVerdict(Protocol):
    """What `protocol.webpush.PushOutcome` offers (the push helper's module)."""

    @property
    def verdict(self) -> enum.Enum: ...

    @property
    def retry_after_s(self) -> float | None: ...

    @property
    def detail(self) -> str: ...


class PushSender(Protocol):
    """`server.webpush.WebPushSender`'s interface."""

    async def send(
        self, subscription: Any, payload: bytes, *, ttl_s: int, topic: str | None = None
    ) -> Any: ...

    async def aclose(self) -> None: ...


class PushChannel:
    """Web Push through the deployment's sender; a subscription gone (404/410) is dropped."""

    def __init__(self, sender: PushSender, subscription_of: Callable[[Any], Any]) -> None:
        self.sender = sender
        self.subscription_of = subscription_of

    async def send(self, due: Due) -> Sent:
        if due.target is None:
            return Sent("dropped", "no subscription")
        try:
            subscription = self.subscription_of(orjson.loads(due.target))
        except ValueError:
            return Sent("dropped", "the subscription is not valid")
        body = orjson.dumps(push_payload(due.id, due.payload))
        result: PushVerdict = await self.sender.send(
            subscription, body, ttl_s=PUSH_TTL_S, topic=None
        )
        verdict = str(result.verdict.value)
        if verdict == "delivered":
            return DELIVERED
        if verdict == "gone":
            return Sent("dropped", result.detail or "subscription gone")
        if verdict == "retry":
            return Sent("retry", result.detail or "push service busy", result.retry_after_s)
        return Sent("failed", result.detail or "push refused")

    async def aclose(self) -> None:
        await self.sender.aclose()
