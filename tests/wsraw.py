"""A deliberately low-level WebSocket client for tests that must send what a good client never
would: invalid UTF-8, oversized frames, or nothing at all while the server keeps writing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct


class RawWebSocket:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str = "/v1/ws",
        headers: dict[str, str] | None = None,
        rcvbuf: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20, ssl=tls)
        if rcvbuf:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return cls(reader, writer, status)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.writer.write(client_frame(opcode, payload, fin))

    async def recv_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(n)

    async def close_code(self, timeout_s: float = 5.0) -> int | None:
        """Read frames until a close frame; its code (None if the socket just ended)."""

        async def read() -> int | None:
            while True:
                try:
                    opcode, payload = await self.recv_frame()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return None
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005

        return await asyncio.wait_for(read(), timeout_s)

    def close(self) -> None:
        self.writer.close()


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked frame, as a client sends it."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def never_reading_watcher(port: int, token: str, rcvbuf: int = 1024) -> socket.socket:
    """A watcher that reads its handshake answer and then not one byte more, ever.

    A plain socket, not asyncio streams (which would keep reading into user space): what the
    server sends piles up in this socket's small receive buffer, then in the server's.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # byte by byte: not one byte past the head
        byte = await loop.sock_recv(sock, 1)
        if not byte:
            raise ConnectionError("closed during the handshake")
        head += byte
    if head.split(b" ", 2)[1] != b"101":
        raise ConnectionError(head.decode(errors="replace"))
    watch = json.dumps({"type": "watch", "token": token}).encode()
    await loop.sock_sendall(sock, client_frame(0x1, watch))
    return sock
