"""Real receivers for the notifier's tests: an HTTP server that verifies Standard Webhooks
signatures (webhooks, the SMS webhook) and an SMTP server (aiosmtpd), both in the test process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.embedded import free_port


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """The receiver's side of the Standard Webhooks signature, written from the spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if "," in s]
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return fresh and any(hmac.compare_digest(expected, s) for s in offered)


@dataclass
class Received:
    id: str
    body: dict[str, Any]
    status: int


@dataclass
class WebhookReceiver:
    """Answers `status` (200 by default) to every POST whose signature verifies; 401 otherwise."""

    secret: str = ""
    status: int = 200
    port: int = field(default_factory=free_port)
    calls: list[Received] = field(default_factory=list)
    forged: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        return [c for c in self.calls if 200 <= c.status < 300]

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        if not self.secret or not verify(self.secret, request.headers, body):
            self.forged += 1
            return Response(status_code=401)
        status = self.status
        self.calls.append(Received(request.headers["webhook-id"], orjson.loads(body), status))
        return Response(status_code=status)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookReceiver]:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        try:
            yield self
        finally:
            server.should_exit = True
            await task


class _Handler:
    def __init__(self, inbox: MailInbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        hold = self.inbox.hold_subject
        if hold is not None and hold in str(message["Subject"]):
            self.inbox.held = True
            await asyncio.Event().wait()  # never answer: the sender dies waiting
        self.inbox.messages.append((time.time(), message, list(envelope.rcpt_tos)))
        return "250 OK"


@dataclass
class MailInbox:
    """An aiosmtpd server on its own thread; `messages` are (arrival time, message, recipients)."""

    port: int = field(default_factory=free_port)
    messages: list[tuple[float, EmailMessage, list[str]]] = field(default_factory=list)
    hold_subject: str | None = None  # a message with this in its subject is never answered
    held: bool = False  # one such message came (set from the server's thread)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, m, rcpt in self.messages if address in rcpt]
