"""A small keep-alive HTTP/1.1 client for JSON APIs, bound to a chosen source address.

Thousands of simulated customers share a few kept-alive connections per process; a full client
library would cost the harness's core more than the server it measures. Only what vqueue's API
answers is supported: JSON or empty bodies with Content-Length.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_IDLE_S = 3.0  # servers close idle keep-alive connections (uvicorn after 5 s)


class HttpError(Exception):
    """A request failed below HTTP: `kind` is the error's name in the report."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # decoded JSON, or None for an empty body
    elapsed_s: float  # from writing the request to reading the whole response
    done_at: float  # time.time() when the response was read


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    def __init__(
        self,
        base_url: str,
        size: int = 8,
        local_addr: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.host_header = parts.netloc
        self.local_addr = local_addr
        self.timeout_s = timeout_s
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(size)

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Reply:
        """One request on a kept-alive connection; raises HttpError on a transport failure."""
        async with self._slots:
            conn = await self._acquire()
            try:
                reply, keep = await asyncio.wait_for(
                    self._exchange(conn, method, path, body, token), self.timeout_s
                )
            except TimeoutError:
                conn.close()
                raise HttpError("http_timeout") from None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                raise HttpError(_kind(exc)) from None
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return reply

    async def _acquire(self) -> _Conn:
        """An idle connection young enough that the server has not closed it, or a new one."""
        while self._idle:
            conn = self._idle.pop()
            if time.monotonic() - conn.idle_since < MAX_IDLE_S:
                return conn
            conn.close()
        return await self._connect()

    async def _connect(self) -> _Conn:
        local = None if self.local_addr is None else (self.local_addr, 0)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, local_addr=local), self.timeout_s
            )
        except TimeoutError:
            raise HttpError("connect_timeout") from None
        except OSError as exc:
            raise HttpError(_kind(exc)) from None
        return _Conn(reader, writer)

    async def _exchange(
        self, conn: _Conn, method: str, path: str, body: Any, token: str | None
    ) -> tuple[Reply, bool]:
        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
        started = time.perf_counter()
        conn.writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        raw = await conn.reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(raw)
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY_BYTES:
            raise ValueError("response too large")
        data = await conn.reader.readexactly(length) if length else b""
        elapsed = time.perf_counter() - started
        decoded = orjson.loads(data) if data else None
        keep = headers.get("connection", "").lower() != "close"
        return Reply(status, decoded, elapsed, time.time()), keep

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.1 response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | asyncio.IncompleteReadError):
        return "http_reset"
    if isinstance(exc, ValueError):
        return "http_bad_response"
    return f"http_oserror_{getattr(exc, 'errno', None) or 'other'}"


def error_kind(reply: Reply) -> str:
    """The report's name for an HTTP error reply: status and the contract's error code."""
    code = None
    if isinstance(reply.body, dict) and isinstance(reply.body.get("error"), dict):
        code = reply.body["error"].get("code")
    return f"http_{reply.status}" + (f"_{code}" if isinstance(code, str) else "")
