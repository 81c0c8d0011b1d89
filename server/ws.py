"""`GET /v1/ws`: a customer's live place in line, and the staff and board views of a queue.

The endpoint checks the handshake's Origin, negotiates the codec, waits for the first message
(`watch`, `watch_queue` or `watch_board`; see docs/protocol.md), hands the connection to the
fan-out and then only listens for `leave`. Everything the connection sends after the first state
goes through its outbox, never an await per frame on the fan-out's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from protocol import closecodes
from protocol.codec import negotiate
from protocol.connection import WATCH_TIMEOUT_S, Connection, Reject, Role
from protocol.messages import Leave, Status, Watch, WatchBoard, WatchQueue
from protocol.ticket import FINAL_STATUSES
from server.access import key_identity, queue_owner, require_owner
from server.auth import TicketClaim, parse_staff_key
from server.clientaddr import client_address
from server.errors import ApiError, Unavailable
from server.fanout import ViewWatcher, Watcher
from server.limits import SocketCounts
from server.origins import origin_allowed
from server.outbox import AsgiOutbox, ChannelOutbox, Outbox
from server.services import Services

log = logging.getLogger(__name__)

WATCH_PATH = "/v1/ws"


class WatchEndpoint:
    """A raw ASGI app: the fast path needs the scope extension and exact close codes."""

    def __init__(self, svc_getter: Any) -> None:
        self._services = svc_getter
        self._sockets: SocketCounts | None = None  # made with the first connection's settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        svc: Services = self._services(scope)
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        if not _origin_allowed(scope, svc):
            await send({"type": "websocket.close", "code": closecodes.POLICY_VIOLATION})
            return
        if self._sockets is None:
            self._sockets = SocketCounts(svc.settings)
        held = self._sockets.acquire(scope)
        if held is None:
            await _refuse_busy(send)
            return
        try:
            codec, subprotocol = negotiate(scope.get("subprotocols") or ())
            # Nothing reads the handshake's headers from here on: not kept for the socket's life.
            scope["headers"] = []
            await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
            session = _Session(svc, scope, receive, send, Connection(codec))
            await session.run()
        finally:
            self._sockets.release(held)


def _origin_allowed(scope: Scope, svc: Services) -> bool:
    """The handshake's Origin check. A function of its own so that the decoded headers are not
    kept, in the endpoint's frame, for as long as the connection lives."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    if origin_allowed(headers, svc.settings, own_always=False):
        return True
    origin = headers.get("origin", "")[:100]
    client = client_address(scope, svc.settings.trusted_proxies)
    log.info("refused a WebSocket from origin %r (client %s)", origin, client)
    return False


async def _refuse_busy(send: Send) -> None:
    """HTTP 429 instead of the handshake: this address holds its share of sockets already."""
    body = b'{"error":{"code":"rate_limited","message":"too many WebSockets from this address"}}'
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"10")]
    await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


class _Session:
    __slots__ = ("claim", "closing", "conn", "receive", "scope", "send", "svc", "watcher")

    def __init__(
        self, svc: Services, scope: Scope, receive: Receive, send: Send, conn: Connection
    ) -> None:
        self.svc = svc
        self.scope = scope
        self.receive = receive
        self.send = send
        self.conn = conn
        self.watcher: Watcher | None = None
        self.claim: TicketClaim | None = None
        self.closing = False

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self.watcher is not None:
                self.svc.fanout.remove(self.watcher)
                if isinstance(self.watcher.outbox, AsgiOutbox):
                    await self.watcher.outbox.aclose()
                self.watcher = None  # it holds this session's callbacks: no cycle left behind

    async def _run(self) -> None:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the wait in a task of
            # its own, one more per connection in a connect storm.
            async with asyncio.timeout(WATCH_TIMEOUT_S):
                frame = await self._next_frame()
        except TimeoutError:
            await self._reject(self.conn.watch_timed_out())
            return
        if frame is None:
            return
        first = self.conn.receive(frame)
        if isinstance(first, Reject):
            await self._reject(first)
            return
        if isinstance(first, Watch):
            started = await self._watch(first.token)
        elif isinstance(first, WatchQueue):
            started = await self._watch_view(first.queue, Role.LINE, first.key)
        else:
            assert isinstance(first, WatchBoard)  # Connection lets no other message open
            started = await self._watch_view(first.queue, Role.BOARD, None)
        if not started:
            return
        while True:
            frame = await self._next_frame()
            if frame is None:
                return
            message = self.conn.receive(frame)
            if isinstance(message, Reject):
                await self._reject(message)
                return
            if isinstance(message, Leave):
                await self._leave()
                return

    async def _next_frame(self) -> str | bytes | None:
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            self.closing = True
            return None
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def _watch(self, token: str) -> bool:
        claim = self.svc.signer.verify(token)
        if claim is None or (claim.legacy and not await self._legacy_allowed(claim)):
            await self._reject(self.conn.bad_token())
            return False
        self.conn.watching(claim.ticket_id)
        self.claim = claim
        watcher = Watcher(
            claim.queue, claim.number, self.conn, self._outbox(), self._end, self._restart
        )
        self.watcher = watcher
        try:
            view = await self.svc.fanout.add(watcher, claim.nonce)
        except Unavailable:
            await self._close(closecodes.TRY_AGAIN_LATER)
            return False
        if view is None or view.nonce != claim.nonce:
            self.watcher = None
            self.svc.fanout.remove(watcher)
            await self._reject(self.conn.bad_token())
            return False
        return True

    async def _watch_view(self, queue: str, role: Role, key: str | None) -> bool:
        """`watch_queue` (staff key of the owning venue) or `watch_board` (anyone)."""
        try:
            owner = await queue_owner(self.svc, queue)
            if key is not None:
                require_owner(owner, (await key_identity(self.svc, key)).venue_id)
            elif owner is None:
                raise ApiError.from_code("queue_not_found")
        except ApiError as exc:
            await self._reject(self.conn.refuse(exc.code, exc.message))
            return False
        except Unavailable:
            await self._close(closecodes.TRY_AGAIN_LATER)
            return False
        self.conn.watching_queue(queue, role)
        view = ViewWatcher(queue, 0, self.conn, self._outbox(), self._end, self._restart, role)
        view.key_id = None if key is None else parse_staff_key(key)
        view.revoked = self._revoked
        self.watcher = view
        try:
            await self.svc.fanout.add_view(view)
        except Unavailable:
            await self._close(closecodes.TRY_AGAIN_LATER)
            return False
        return True

    def _revoked(self) -> None:
        """The staff key of this `watch_queue` was revoked: refuse it from now on (1008)."""
        if not self.closing:
            self.closing = True
            reject = self.conn.refuse("unauthorized", "this staff key has been revoked")
            asyncio.get_running_loop().create_task(self._reject(reject))

    async def _legacy_allowed(self, claim: TicketClaim) -> bool:
        try:
            view = await self.svc.store.ticket(claim.queue, claim.number)
        except Unavailable:
            return False
        return view is not None and self.svc.signer.legacy_allowed(view.joined_ms, view.status)

    def _outbox(self) -> Outbox:
        text = self.conn.codec.is_text
        backlogged = self.svc.fanout.sweeper.backlogged
        push = (self.scope.get("extensions") or {}).get("vqueue.push")
        if push is not None:
            return ChannelOutbox(push["channel"], text, backlogged)
        return AsgiOutbox(self.send, text, backlogged)

    async def _leave(self) -> None:
        watcher, claim = self.watcher, self.claim
        assert watcher is not None and claim is not None
        try:
            result = await self.svc.store.leave(claim.queue, claim.number, claim.nonce)
            watcher.send(Status(claim.ticket_id, "left", int(result["seq"])))
        except ApiError:  # already finished (or gone): tell the client how it ended
            view = await self.svc.store.ticket(claim.queue, claim.number)
            if view is not None and view.status in FINAL_STATUSES:
                watcher.send(Status(claim.ticket_id, view.status, view.seq))
        except Unavailable:
            await self._close(closecodes.TRY_AGAIN_LATER)
            return
        await self._close(closecodes.NORMAL)

    def _end(self) -> None:
        """The ticket is finished: close once the status frame is out."""
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(self._close(closecodes.NORMAL))

    def _restart(self) -> None:
        """What this connection was shown is no longer true of Redis: 1012, reconnect."""
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(self._close(closecodes.SERVICE_RESTART))

    async def _reject(self, reject: Reject) -> None:
        frame = self.conn.codec.encode(reject.error)
        await self._send_now(frame)
        await self._close(reject.close_code)

    async def _send_now(self, frame: bytes) -> None:
        event: dict[str, Any] = {"type": "websocket.send"}
        if self.conn.codec.is_text:
            event["text"] = frame.decode()
        else:
            event["bytes"] = frame
        with contextlib.suppress(OSError, RuntimeError):
            await self.send(event)

    async def _close(self, code: int) -> None:
        self.closing = True
        if self.watcher is not None:
            await self.watcher.outbox.drain()
        self.conn.closed()
        with contextlib.suppress(OSError, RuntimeError):
            await self.send({"type": "websocket.close", "code": code})
