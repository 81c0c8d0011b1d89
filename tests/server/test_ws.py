"""The WebSocket watch (docs/protocol.md) against a real server and real clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import SharedServer
from tests.wsraw import RawWebSocket


def staff(s: SharedServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {s.key}"}


async def join(http: httpx.AsyncClient, queue: str) -> dict[str, Any]:
    r = await http.post(f"/v1/queues/{queue}/tickets", json={})
    assert r.status_code == 201
    data: dict[str, Any] = r.json()
    return data


async def watch(
    s: SharedServer, token: str, subprotocol: str | None = "vq1.json"
) -> ClientConnection:
    ws = await connect(s.server.ws_url, subprotocols=[subprotocol] if subprotocol else None)  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "watch", "token": token}))
    return ws


async def next_message(
    ws: ClientConnection, timeout_s: float = 5.0, states: bool = False
) -> dict[str, Any]:
    """The next message; the queue's `queue` state messages are skipped unless `states`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        left = max(deadline - asyncio.get_running_loop().time(), 0.01)
        raw = await asyncio.wait_for(ws.recv(), left)
        data: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw)
        if states or data.get("type") != "queue":
            return data


async def until(
    ws: ClientConnection, predicate: Any, timeout_s: float = 5.0, states: bool = False
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await next_message(ws, max(left, 0.01), states)
        if predicate(message):
            return message


async def closed_with(ws: ClientConnection, timeout_s: float = 5.0) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout_s)
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def test_watch_gets_state_at_once_then_changes(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    tickets = [await join(http, queue) for _ in range(3)]
    ws = await watch(shared_server, tickets[2]["token"])
    first = await next_message(ws)
    assert first["type"] == "position"
    assert {k: first[k] for k in ("ticket_id", "position", "waiting")} == {
        "ticket_id": tickets[2]["ticket_id"],
        "position": 3,
        "waiting": 3,
    }
    assert "eta_s" in first and isinstance(first["seq"], int)
    await http.post(f"/v1/queues/{queue}/call-next", headers=staff(shared_server))
    moved = await until(ws, lambda m: m["position"] == 2)
    assert moved["seq"] > first["seq"] and moved["waiting"] == 2
    await http.delete(
        f"/v1/tickets/{tickets[1]['ticket_id']}",
        headers={"Authorization": f"Bearer {tickets[1]['token']}"},
    )
    await until(ws, lambda m: m["position"] == 1)
    r = await http.post(
        f"/v1/queues/{queue}/call-next", json={"counter": "desk 9"}, headers=staff(shared_server)
    )
    assert r.json()["ticket_id"] == tickets[2]["ticket_id"]
    called = await until(ws, lambda m: m["type"] == "called")
    assert called == {
        "type": "called",
        "ticket_id": tickets[2]["ticket_id"],
        "counter": "desk 9",
        "seq": called["seq"],
    }
    await http.post(f"/v1/tickets/{tickets[2]['ticket_id']}/served", headers=staff(shared_server))
    status = await until(ws, lambda m: m["type"] == "status")
    assert status["status"] == "served" and status["seq"] > called["seq"]
    assert await closed_with(ws) == 1000


async def test_msgpack_and_default_subprotocol(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    t = await join(http, queue)
    ws = await connect(shared_server.server.ws_url, subprotocols=["vq1.msgpack"])  # type: ignore[list-item]
    assert ws.subprotocol == "vq1.msgpack"
    await ws.send(msgpack.packb({"type": "watch", "token": t["token"]}))
    raw = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(raw, bytes) and msgpack.unpackb(raw)["type"] == "queue"
    raw = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(raw, bytes) and msgpack.unpackb(raw)["position"] == 1
    await ws.close()
    ws = await connect(shared_server.server.ws_url)
    assert ws.subprotocol is None
    await ws.send(json.dumps({"type": "watch", "token": t["token"]}))
    assert (await next_message(ws))["position"] == 1
    await ws.close()


async def test_watch_after_call_and_reconnect(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    t = await join(http, queue)
    await http.post(
        f"/v1/queues/{queue}/call-next", json={"counter": "c1"}, headers=staff(shared_server)
    )
    for _ in range(2):  # state-based: every (re)connect gets the current state at once
        ws = await watch(shared_server, t["token"])
        message = await next_message(ws)
        assert (message["type"], message["counter"]) == ("called", "c1")
        await ws.close()


async def test_several_connections_one_ticket(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    await join(http, queue)
    t = await join(http, queue)
    a, b = await watch(shared_server, t["token"]), await watch(shared_server, t["token"])
    for ws in (a, b):
        assert (await next_message(ws))["position"] == 2
    await http.post(f"/v1/queues/{queue}/call-next", headers=staff(shared_server))
    for ws in (a, b):
        assert (await until(ws, lambda m: m.get("position") == 1))["type"] == "position"
        await ws.close()


async def test_leave_over_websocket(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    t = await join(http, queue)
    ws = await watch(shared_server, t["token"])
    await next_message(ws)
    await ws.send(json.dumps({"type": "leave"}))
    status = await until(ws, lambda m: m["type"] == "status")
    assert status["status"] == "left"
    assert await closed_with(ws) == 1000
    r = await http.get(
        f"/v1/tickets/{t['ticket_id']}", headers={"Authorization": f"Bearer {t['token']}"}
    )
    assert r.json()["status"] == "left"
    assert (await http.get(f"/v1/queues/{queue}")).json()["waiting"] == 0


@pytest.mark.parametrize(
    "first",
    [
        "not json",
        '{"type": "leave"}',
        '{"type": "dance"}',
        '{"type": "watch"}',
        '{"type": "watch", "token": "forged.token"}',
        "[]",
    ],
)
async def test_bad_first_messages_close_1008(shared_server: SharedServer, first: str) -> None:
    ws = await connect(shared_server.server.ws_url)
    await ws.send(first)
    error = await next_message(ws)
    assert error["type"] == "error" and isinstance(error["code"], str) and error["message"]
    assert await closed_with(ws) == 1008


async def test_other_tickets_token_and_unknown_message_later(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    t = await join(http, queue)
    ws = await watch(shared_server, t["token"])
    await next_message(ws)
    await ws.send('{"type": "dance"}')
    assert (await until(ws, lambda m: m["type"] == "error"))["code"] == "bad_message"
    assert await closed_with(ws) == 1008
    # the ticket is untouched by a broken connection
    assert (await http.get(f"/v1/queues/{queue}")).json()["waiting"] == 1


async def test_binary_frame_on_json_is_1003(shared_server: SharedServer) -> None:
    ws = await connect(shared_server.server.ws_url, subprotocols=["vq1.json"])  # type: ignore[list-item]
    await ws.send(b'{"type": "watch", "token": "x"}')
    assert await closed_with(ws) == 1003


async def test_invalid_utf8_is_1007_and_oversize_is_1009(shared_server: SharedServer) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", shared_server.server.port)
    assert raw.status == 101
    raw.send_frame(0x1, b'{"type": "watch", "token": "\xff\xfe"}')
    assert await raw.close_code() == 1007
    raw.close()
    raw = await RawWebSocket.connect("127.0.0.1", shared_server.server.port)
    raw.send_frame(0x1, b'"' + b"a" * (65 * 1024) + b'"')
    assert await raw.close_code() == 1009
    raw.close()


async def test_no_watch_within_10_s_is_1008(shared_server: SharedServer) -> None:
    ws = await connect(shared_server.server.ws_url)
    error = await next_message(ws, timeout_s=12)
    assert error["type"] == "error"
    assert await closed_with(ws) == 1008


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 101),
        ("http://127.0.0.1:{port}", 101),
        ("https://evil.example", 403),
        ("http://127.0.0.1:1", 403),
        ("null", 403),
    ],
)
async def test_origin_allowlist_defaults_to_same_origin(
    shared_server: SharedServer, origin: str | None, status: int
) -> None:
    port = shared_server.server.port
    headers = {} if origin is None else {"Origin": origin.format(port=port)}
    raw = await RawWebSocket.connect("127.0.0.1", port, headers=headers)
    assert raw.status == status
    raw.close()


async def test_configured_origins(start_server: Any) -> None:
    server = start_server(VQ_ALLOWED_ORIGINS="https://venue.example, https://other.example")
    for origin, status in (
        ("https://venue.example", 101),
        (f"http://127.0.0.1:{server.port}", 403),
    ):
        raw = await RawWebSocket.connect("127.0.0.1", server.port, headers={"Origin": origin})
        assert raw.status == status, origin
        raw.close()


async def test_configured_origins_may_call_the_api_cross_origin(start_server: Any) -> None:
    server = start_server(VQ_ALLOWED_ORIGINS="https://venue.example")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.options(
            "/v1/queues/any/tickets",
            headers={"Origin": "https://venue.example", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://venue.example"
        r = await http.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
