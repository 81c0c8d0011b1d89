"""A lean WebSocket client protocol for thousands of sockets in one process.

It stamps each read with the wall clock as the bytes arrive (before any decoding), parses the
server's unmasked frames in place, answers pings and closes, and masks what it sends (RFC 6455).
`websockets`' asyncio client spends a task, a queue and a future per socket, which on the
harness's one core would make the harness, not the server, the thing measured.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024

# on_message(opcode, payload, received_at) and on_closed(code): code 1006 when no close frame.
OnMessage = Callable[[int, bytes, float], None]
OnClosed = Callable[[int], None]


class HandshakeError(Exception):
    """The server refused the upgrade or answered something else; `kind` names it."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked frame, as a client must send it."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + key + mask(payload, key)


class WsClient(asyncio.Protocol):
    def __init__(
        self, host: str, path: str, subprotocol: str, on_message: OnMessage, on_closed: OnClosed
    ) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
        ).encode()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._on_message = on_message
        self._on_closed = on_closed
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_op = 0
        self.close_code: int | None = None
        # time.time() when TCP connected, before the handshake: a storm's wait before this
        # is the client machine's (its kernel and its loop), not the server's
        self.connected_at: float | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self._upgraded and not self._buf and len(data) >= 2:
            # The common case, without copying: one small final unmasked text/binary frame.
            first, length = data[0], data[1]
            if length < 126 and len(data) == length + 2 and first in (0x81, 0x82):
                self._on_message(first & 0x0F, data[2:], now)
                return
        self._buf += data
        if not self._upgraded and not self._handshake():
            return
        self._frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError("ws_connect_lost"))
        code = 1006 if self.close_code is None else self.close_code
        self.transport = None
        self._on_closed(code)

    # sending

    def send(self, payload: bytes, text: bool = True) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_TEXT if text else OP_BINARY, payload))

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_CLOSE, struct.pack("!H", code)))
            self.close_code = code
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # receiving

    def _handshake(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                self._fail("ws_bad_handshake")
            return False
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            self._fail(f"ws_handshake_{status[1] if len(status) > 1 else 'bad'}")
            return False
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        accept = [line.split(":", 1)[1].strip() for line in head[1:] if _named(line, "accept")]
        if accept != [expected]:
            self._fail("ws_bad_accept")
            return False
        self._upgraded = True
        if not self.opened.done():
            self.opened.set_result(None)
        return True

    def _frames(self, now: float) -> None:
        buf, pos, size = self._buf, 0, len(self._buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length, start = second & 0x7F, pos + 2
            if second & 0x80:
                self._fail("ws_masked_server_frame")
                return
            if length == 126:
                if size - start < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, start)
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, start)
                start += 8
            if length > MAX_MESSAGE_BYTES:
                self._fail("ws_frame_too_big")
                return
            if size - start < length:
                break
            pos = start + length
            self._frame(first, bytes(buf[start:pos]), now)
        del buf[:pos]

    def _frame(self, first: int, payload: bytes, now: float) -> None:
        opcode, fin = first & 0x0F, bool(first & 0x80)
        if opcode in (OP_TEXT, OP_BINARY) and fin:
            self._on_message(opcode, payload, now)
        elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            if opcode != OP_CONT:
                self._fragment_op, self._fragments = opcode, []
            self._fragments.append(payload)
            if fin:
                self._on_message(self._fragment_op, b"".join(self._fragments), now)
                self._fragments = []
        elif opcode == OP_PING:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if self.close_code is None:
                self.close(code)
            self.close_code = code
        elif opcode != OP_PONG:
            self._fail("ws_bad_opcode")

    def _fail(self, kind: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(kind))
        self.close_code = self.close_code or 1002
        if self.transport is not None:
            self.transport.abort()


def _named(line: str, suffix: str) -> bool:
    return line.lower().startswith(f"sec-websocket-{suffix}:")


async def open_ws(
    url: str,
    subprotocol: str,
    on_message: OnMessage,
    on_closed: OnClosed,
    local_addr: str | None = None,
    timeout_s: float = 15.0,
) -> WsClient:
    """Connect and finish the opening handshake; raises HandshakeError, OSError or TimeoutError."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"only ws:// URLs are supported, got {url!r}")
    loop = asyncio.get_running_loop()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def build() -> WsClient:
        return WsClient(parts.netloc, path, subprotocol, on_message, on_closed)

    local = None if local_addr is None else (local_addr, 0)
    client: WsClient | None = None
    try:
        async with asyncio.timeout(timeout_s):
            _, client = await loop.create_connection(
                build, parts.hostname, parts.port or 80, local_addr=local
            )
            client.connected_at = time.time()
            await client.opened
    except BaseException:
        if client is not None:
            client.abort()
        raise
    return client
