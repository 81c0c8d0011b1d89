"""The staff and board views on `/v1/ws` (`watch_queue`, `watch_board`) and the v2 messages a
ticket's watcher gets (`queue`), against a real server and real WebSocket clients."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import SharedServer
from tests.server.conftest import join_named
from tests.server.test_ws import closed_with, join, staff
from tests.server.test_ws import next_message as next_any
from tests.server.test_ws import until as until_any


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    return await next_any(ws, states=True)


async def until(ws: ClientConnection, predicate: Any) -> dict[str, Any]:
    return await until_any(ws, predicate, states=True)


async def open_view(url: str, message: dict[str, Any]) -> ClientConnection:
    ws = await connect(url)
    await ws.send(json.dumps(message))
    return ws


async def test_watch_queue_gets_the_line_at_once_then_after_each_change(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    ann = await join_named(http, queue, "Ann")
    bo = await join_named(http, queue, "Bo")
    ws = await open_view(
        shared_server.server.ws_url,
        {"type": "watch_queue", "queue": queue, "key": shared_server.key},
    )
    state = await next_message(ws)
    assert state == {"type": "queue", "queue": queue, "state": "open", "seq": state["seq"]}
    line = await next_message(ws)
    assert line["type"] == "line" and line["seq"] == state["seq"]
    assert line["waiting_count"] == 2 and line["called"] == []
    assert line["waiting"] == [
        {"ticket_id": ann["ticket_id"], "number": 1, "name": "Ann", "position": 1, "priority": 0},
        {"ticket_id": bo["ticket_id"], "number": 2, "name": "Bo", "position": 2, "priority": 0},
    ]
    r = await http.post(
        f"/v1/queues/{queue}/call-next", json={"counter": "desk 1"}, headers=staff(shared_server)
    )
    assert r.status_code == 200
    after = await until(ws, lambda m: m["type"] == "line" and m["waiting_count"] == 1)
    assert [t["name"] for t in after["waiting"]] == ["Bo"]
    assert after["waiting"][0]["position"] == 1
    [call] = after["called"]
    assert {k: call[k] for k in ("ticket_id", "number", "name", "counter")} == {
        "ticket_id": ann["ticket_id"],
        "number": 1,
        "name": "Ann",
        "counter": "desk 1",
    }
    assert call["at"].endswith("Z") and "T" in call["at"]
    await http.post(f"/v1/queues/{queue}/pause", headers=staff(shared_server))
    paused = await until(ws, lambda m: m["type"] == "queue")
    assert paused["state"] == "paused" and paused["seq"] > after["seq"]
    assert (await until(ws, lambda m: m["type"] == "line"))["state"] == "paused"
    await ws.close()


async def test_watch_board_shows_numbers_and_counters_without_names(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    await join_named(http, queue, "Secret Name")
    await join_named(http, queue, "Other Name")
    ws = await open_view(shared_server.server.ws_url, {"type": "watch_board", "queue": queue})
    assert (await next_message(ws))["type"] == "queue"
    board = await next_message(ws)
    assert board == {
        "type": "board",
        "queue": queue,
        "state": "open",
        "waiting_count": 2,
        "called": [],
        "seq": board["seq"],
    }
    await http.post(
        f"/v1/queues/{queue}/call-next", json={"counter": "desk 4"}, headers=staff(shared_server)
    )
    after = await until(ws, lambda m: m["type"] == "board" and m["called"])
    assert after["called"] == [{"number": 1, "counter": "desk 4"}]
    assert after["waiting_count"] == 1
    await ws.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            {"type": "watch_queue", "queue": "{queue}", "key": "vqk_" + "0" * 16 + "_" + "A" * 43},
            "unauthorized",
        ),
        ({"type": "watch_queue", "queue": "{queue}", "key": "not-a-key"}, "unauthorized"),
        ({"type": "watch_queue", "queue": "{queue}", "key": "{other}"}, "forbidden"),
        ({"type": "watch_queue", "queue": "nope-{queue}", "key": "{key}"}, "queue_not_found"),
        ({"type": "watch_board", "queue": "nope-{queue}"}, "queue_not_found"),
        ({"type": "watch_queue", "queue": "{queue}"}, "bad_message"),
        ({"type": "watch_board", "queue": "Not A Slug"}, "bad_message"),
        ({"type": "watch_board", "queue": 7}, "bad_message"),
    ],
)
async def test_refused_views_close_with_1008(
    shared_server: SharedServer, queue: str, message: dict[str, Any], code: str
) -> None:
    filled = {
        k: v.format(queue=queue, key=shared_server.key, other=shared_server.other_key)
        if isinstance(v, str)
        else v
        for k, v in message.items()
    }
    ws = await open_view(shared_server.server.ws_url, filled)
    error = await next_message(ws)
    assert (error["type"], error["code"]) == ("error", code)
    assert await closed_with(ws) == 1008


async def test_leave_on_a_view_is_refused(shared_server: SharedServer, queue: str) -> None:
    ws = await open_view(shared_server.server.ws_url, {"type": "watch_board", "queue": queue})
    await until(ws, lambda m: m["type"] == "board")
    await ws.send(json.dumps({"type": "leave"}))
    error = await until(ws, lambda m: m["type"] == "error")
    assert error["code"] == "bad_message"
    assert await closed_with(ws) == 1008


async def test_a_ticket_watcher_is_told_the_queue_state_at_watch_and_on_change(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    t = await join(http, queue)
    await http.post(f"/v1/queues/{queue}/pause", headers=staff(shared_server))
    ws = await connect(shared_server.server.ws_url)
    await ws.send(json.dumps({"type": "watch", "token": t["token"]}))
    first = await next_message(ws)
    assert {k: first[k] for k in ("type", "queue", "state")} == {
        "type": "queue",
        "queue": queue,
        "state": "paused",
    }
    assert (await next_message(ws))["type"] == "position"
    await http.post(f"/v1/queues/{queue}/close", headers=staff(shared_server))
    closed = await until(ws, lambda m: m["type"] == "queue")
    assert closed["state"] == "closed" and closed["seq"] > first["seq"]
    await http.post(f"/v1/queues/{queue}/open", headers=staff(shared_server))
    assert (await until(ws, lambda m: m["type"] == "queue"))["state"] == "open"
    await ws.close()


async def test_revoking_the_key_closes_its_watch_queue(
    shared_server: SharedServer, http: httpx.AsyncClient, queue: str
) -> None:
    r = await http.post(
        "/v1/keys", json={"label": "desk", "role": "staff"}, headers=staff(shared_server)
    )
    assert r.status_code == 201, r.text
    made = r.json()
    ws = await open_view(
        shared_server.server.ws_url,
        {"type": "watch_queue", "queue": queue, "key": made["staff_key"]},
    )
    await until(ws, lambda m: m["type"] == "line")
    r = await http.delete(f"/v1/keys/{made['key_id']}", headers=staff(shared_server))
    assert r.status_code == 200, r.text
    error = await until(ws, lambda m: m["type"] == "error")
    assert error["code"] == "unauthorized"
    assert await closed_with(ws) == 1008
