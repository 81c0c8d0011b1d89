"""Staff and board views on several nodes while other nodes change the line: once things are
quiet, every view's last frame is the true line (no polling, no Redis read per event)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

NODES = 3
JOINS = 80
CALLS = 30
LEAVES = 15


@dataclass(eq=False)
class View:
    url: str
    request: dict[str, Any]
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await connect(self.url, open_timeout=20)
        await self.ws.send(json.dumps(self.request))
        self.task = asyncio.get_running_loop().create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.frames.append(json.loads(raw))

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((f for f in reversed(self.frames) if f["type"] == kind), None)

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await self.task


async def truth(http: httpx.AsyncClient, queue: str, auth: dict[str, str]) -> dict[str, Any]:
    r = await http.get(f"/v1/queues/{queue}/tickets", headers=auth)
    r.raise_for_status()
    return dict(r.json())


def line_wrong(view: View, true: dict[str, Any], names: bool) -> str | None:
    line = view.last("line")
    if line is None:
        return "no line frame"
    fields = ("ticket_id", "name", "position") if names else ("ticket_id", "position")
    shown = [tuple(t[f] for f in fields) for t in line["waiting"]]
    wanted = [tuple(t[f] for f in fields) for t in true["waiting"]]
    if shown != wanted or line["waiting_count"] != len(true["waiting"]):
        return f"waiting {shown[:5]}... != {wanted[:5]}..."
    called = [(c["ticket_id"], c["counter"]) for c in line["called"]]
    if called != [(c["ticket_id"], c["counter"]) for c in true["called"]]:
        return f"called {called}"
    return None


def board_wrong(view: View, true: dict[str, Any]) -> str | None:
    board = view.last("board")
    if board is None:
        return "no board frame"
    if board["waiting_count"] != len(true["waiting"]):
        return f"waiting_count {board['waiting_count']}"
    if [c["number"] for c in board["called"]] != [c["number"] for c in true["called"]]:
        return "called numbers"
    if any("name" in c for c in board["called"]):
        return "a name on the board"
    return None


@pytest.mark.timeout(180)
async def test_views_on_every_node_end_on_the_true_line(start_server: Any, make_venue: Any) -> None:
    _, key = await make_venue("Views")
    auth = {"Authorization": f"Bearer {key}"}
    nodes = [start_server() for _ in range(NODES)]
    clients = [httpx.AsyncClient(base_url=n.url, timeout=20) for n in nodes]
    # Join notices carry the name once the line operations (branch lineops) are in; before
    # that, names after the first read cannot reach a view without a Redis call.
    probe = await clients[0].post("/v1/tickets/x.1/recall", json={}, headers=auth)
    names = not (probe.status_code == 404 and probe.json()["error"]["code"] == "not_found")
    queue = f"vm-{secrets.token_hex(3)}"
    r = await clients[0].put(f"/v1/queues/{queue}", json={"name": "VM"}, headers=auth)
    assert r.status_code == 201
    staff_req = {"type": "watch_queue", "queue": queue, "key": key}
    board_req = {"type": "watch_board", "queue": queue}
    views = [View(nodes[1].ws_url, staff_req), View(nodes[2].ws_url, staff_req)]
    boards = [View(nodes[0].ws_url, board_req), View(nodes[2].ws_url, board_req)]
    for v in views + boards:
        await v.start()
    rng = random.Random(11)
    tickets: list[dict[str, Any]] = []

    async def joins(first: int, last: int) -> None:
        for i in range(first, last):
            c = clients[i % NODES]
            r = await c.post(f"/v1/queues/{queue}/tickets", json={"name": f"n{i}"})
            assert r.status_code == 201, r.text
            tickets.append(r.json())

    async def calls() -> None:
        for i in range(CALLS):
            r = await clients[rng.randrange(NODES)].post(
                f"/v1/queues/{queue}/call-next", json={"counter": f"d{i % 4}"}, headers=auth
            )
            assert r.status_code in (200, 204), r.text
            if r.status_code == 200 and i % 3 == 0:
                tid = r.json()["ticket_id"]
                done = await clients[rng.randrange(NODES)].post(
                    f"/v1/tickets/{tid}/served", headers=auth
                )
                # 409 when the customer left meanwhile (leave() picks any ticket)
                assert done.status_code in (200, 409), done.text

    async def leaves() -> None:
        for _ in range(LEAVES):
            t = tickets[rng.randrange(len(tickets))]
            await clients[rng.randrange(NODES)].delete(
                f"/v1/tickets/{t['ticket_id']}", headers={"Authorization": f"Bearer {t['token']}"}
            )

    await joins(0, 20)  # some to leave from the start
    await asyncio.gather(joins(20, JOINS), calls(), leaves())
    late = View(nodes[0].ws_url, staff_req)  # a console opened after the storm starts right
    await late.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        true = await truth(clients[0], queue, auth)
        wrong = [line_wrong(v, true, names) for v in [*views, late]] + [
            board_wrong(b, true) for b in boards
        ]
        if not any(wrong) or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert not any(wrong), wrong
    for v in [*views, *boards, late]:
        seqs = [f["seq"] for f in v.frames]
        assert seqs == sorted(seqs), "seq went back on a view"
        await v.stop()
    for c in clients:
        await c.aclose()
