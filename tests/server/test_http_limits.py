"""HTTP hardening against a real server over raw sockets: the head size limit, the slow-request
and idle timeouts, the concurrency cap (which never counts WebSockets), a client leaving
mid-body, and a flood of unknown queue slugs that must leave memory and PostgreSQL alone."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

READ_DEADLINE_S = 20.0


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), READ_DEADLINE_S)


def status_of(raw: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3})", raw)
    assert match is not None, raw[:200]
    return int(match.group(1))


async def test_heads_over_16_kib_get_431(start_server: Any) -> None:
    node = start_server()
    async with httpx.AsyncClient(base_url=node.url) as c:
        fine = await c.get("/healthz", headers={"X-Pad": "a" * 12_000})
        assert fine.status_code == 200
    reader, writer = await connect(node.url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
    raw = await read_until_closed(reader)
    assert status_of(raw) == 431 and b"headers_too_large" in raw
    writer.close()


@pytest.mark.parametrize("stall", ["head", "body"])
async def test_a_request_that_arrives_too_slowly_gets_408(start_server: Any, stall: str) -> None:
    node = start_server(VQ_HTTP_REQUEST_TIMEOUT_S="1")
    reader, writer = await connect(node.url)
    if stall == "head":
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never ends its head
    else:
        head = b"POST /v1/queues/nope/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        writer.write(head + b'{"na')
    started = time.monotonic()
    raw = await read_until_closed(reader)
    assert status_of(raw) == 408 and b"request_timeout" in raw
    assert time.monotonic() - started < READ_DEADLINE_S
    writer.close()


async def test_idle_connections_are_closed(start_server: Any) -> None:
    node = start_server(VQ_HTTP_KEEPALIVE_S="1")
    fresh_reader, fresh = await connect(node.url)  # never sends a byte
    used_reader, used = await connect(node.url)
    used.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await read_until_closed(fresh_reader) == b""
    assert status_of(await read_until_closed(used_reader)) == 200  # then closed when idle
    fresh.close()
    used.close()


async def test_concurrent_http_requests_are_capped_but_websockets_are_not(
    start_server: Any,
) -> None:
    node = start_server(VQ_HTTP_MAX_CONCURRENT="2", VQ_HTTP_REQUEST_TIMEOUT_S="60")
    held = []
    for _ in range(2):  # two requests held open in their handlers, waiting for their bodies
        reader, writer = await connect(node.url)
        writer.write(
            b"POST /v1/queues/nope/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"
        )
        held.append((reader, writer))
    async with httpx.AsyncClient(base_url=node.url) as c:
        deadline = time.monotonic() + READ_DEADLINE_S
        r = await c.get("/healthz")
        while r.status_code == 200 and time.monotonic() < deadline:  # until both are in
            r = await c.get("/healthz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
        assert r.headers["Retry-After"]
        sockets = [await websockets.connect(node.ws_url) for _ in range(3)]
        for ws in sockets:
            await ws.close()
        for _, writer in held:
            writer.close()
        while r.status_code == 503 and time.monotonic() < deadline:
            r = await c.get("/healthz")
        assert r.status_code == 200


async def test_a_client_leaving_mid_body_is_not_an_error(start_server: Any) -> None:
    node = start_server(VQ_LOG_LEVEL="DEBUG")
    _, writer = await connect(node.url)
    writer.write(b"POST /v1/queues/nope/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    await writer.drain()
    writer.close()
    deadline = time.monotonic() + READ_DEADLINE_S
    while "client left during POST" not in node.log_text():
        assert time.monotonic() < deadline, node.log_text()[-2000:]
        await asyncio.sleep(0.05)
    assert "Traceback" not in node.log_text()


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


async def flood_unknown_slugs(url: str, count: int, connections: int = 8) -> None:
    """`count` requests naming distinct unknown slugs, pipelined over a few connections."""
    batch = 100

    async def one_connection(share: int) -> None:
        reader, writer = await connect(url)
        for start in range(0, share, batch):
            n = min(batch, share - start)
            requests = []
            for _ in range(n):
                slug = f"u-{secrets.token_hex(8)}"
                requests.append(f"GET /v1/queues/{slug} HTTP/1.1\r\nHost: x\r\n\r\n")
                requests.append(
                    f"POST /v1/queues/{slug}/tickets HTTP/1.1\r\nHost: x\r\n"
                    "Content-Length: 2\r\n\r\n{}"
                )
            writer.write("".join(requests).encode())
            seen = 0
            buffer = b""
            while seen < 2 * n:
                chunk = await asyncio.wait_for(reader.read(65536), READ_DEADLINE_S)
                assert chunk, "server closed the connection"
                buffer += chunk
                seen = buffer.count(b"HTTP/1.1 404")
            assert buffer.count(b"HTTP/1.1 ") == 2 * n, buffer[:300]
        writer.close()

    share = count // connections
    await asyncio.gather(*(one_connection(share) for _ in range(connections)))


async def transactions(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        return int(value)
    finally:
        await conn.close()


@pytest.mark.timeout(600)
async def test_unknown_slugs_leave_memory_flat_and_postgres_alone(
    start_server: Any, database_url: str
) -> None:
    node = start_server()
    assert node.proc is not None
    await flood_unknown_slugs(node.url, 5_000)  # warm up allocator pools and caches
    before_kib = rss_kib(node.proc.pid)
    before_xacts = await transactions(database_url)
    await flood_unknown_slugs(node.url, 50_000)
    grown_kib = rss_kib(node.proc.pid) - before_kib
    queries = await transactions(database_url) - before_xacts
    assert grown_kib < 5 * 1024, f"RSS grew {grown_kib} KiB over 50,000 unknown slugs"
    # 100,000 requests; the background loops' own queries and the known-slug reads remain.
    assert queries < 2_000, f"{queries} PostgreSQL transactions for 100,000 unknown-slug requests"
