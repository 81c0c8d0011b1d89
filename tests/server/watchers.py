"""Many real WebSocket watchers that record everything they are sent (for multi-node tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from protocol.closecodes import SERVICE_RESTART, TRY_AGAIN_LATER


@dataclass(eq=False)
class RecordingWatcher:
    """With `follow`, it does what the bundled client does with `moved`: once the server has
    closed the connection, it watches the new ticket with the new token (`ticket_id` and `token`
    become the new ones; `hops` lists the tickets it left)."""

    ticket_id: str
    token: str
    ws_url: str
    follow: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.perf_counter() of each message
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None
    reconnects: int = 0
    hops: list[str] = field(default_factory=list)
    stopping: bool = False

    async def start(self) -> None:
        self.ws = await self._watch()
        self.task = asyncio.get_running_loop().create_task(self._read(self.ws))

    async def _watch(self) -> ClientConnection:
        ws = await connect(self.ws_url, open_timeout=20)
        await ws.send(json.dumps({"type": "watch", "token": self.token}))
        return ws

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    self.arrived.append(time.perf_counter())
                    self.messages.append(json.loads(raw))
            if self.stopping:
                return
            last = self.messages[-1] if self.messages else {}
            if self.follow and last.get("type") == "moved" and ws.close_code == 1000:
                self.hops.append(self.ticket_id)
                self.ticket_id, self.token = last["to_ticket_id"], last["token"]
            elif ws.close_code in (SERVICE_RESTART, TRY_AGAIN_LATER):
                # Like the customer page: 1012 (the server restarts, or what it showed no
                # longer holds) and 1013 (Redis unreachable for now) mean reconnect and start
                # over; anything else ends the watch.
                self.reconnects += 1
                await asyncio.sleep(0.1 * min(self.reconnects, 10))
            else:
                return
            try:
                ws = self.ws = await self._watch()
            except (OSError, TimeoutError, InvalidHandshake):  # the node is down: end quietly
                return

    async def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()  # it may be between two connections
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.ws is not None:
            await self.ws.close()

    @property
    def last_position(self) -> int | None:
        for m in reversed(self.messages):
            if m["type"] == "position":
                return int(m["position"])
            if m["type"] in ("called", "status"):
                return None
        return None

    @property
    def last_state(self) -> tuple[str | None, str | None, int | None]:
        """(status, ticket id, position) as the messages so far tell it: what the page shows."""
        for m in reversed(self.messages):
            kind = m["type"]
            if kind == "position":
                return "waiting", m["ticket_id"], int(m["position"])
            if kind == "called":
                return "called", m["ticket_id"], None
            if kind == "status":
                return m["status"], m["ticket_id"], None
            if kind == "moved":
                return "transferred", m["ticket_id"], None
        return None, None, None

    @property
    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]

    @property
    def closed(self) -> bool:
        return self.task is not None and self.task.done()


async def true_positions(http: httpx.AsyncClient, queue: str, key: str) -> dict[str, int]:
    r = await http.get(f"/v1/queues/{queue}/tickets", headers={"Authorization": f"Bearer {key}"})
    r.raise_for_status()
    return {row["ticket_id"]: row["position"] for row in r.json()["waiting"]}


async def mismatches(
    watchers: list[RecordingWatcher], http: httpx.AsyncClient, queue: str, key: str
) -> list[tuple[str, int | None, int | None]]:
    truth = await true_positions(http, queue, key)
    return [
        (w.ticket_id, w.last_position, truth.get(w.ticket_id))
        for w in watchers
        if w.last_position != truth.get(w.ticket_id)
    ]


async def settle(
    watchers: list[RecordingWatcher],
    http: httpx.AsyncClient,
    queue: str,
    key: str,
    timeout_s: float = 10.0,
) -> list[tuple[str, int | None, int | None]]:
    """Wait, with a deadline, until every last position is the truth; return what is off."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    wrong = await mismatches(watchers, http, queue, key)
    while wrong and loop.time() < deadline:
        await asyncio.sleep(0.1)
        wrong = await mismatches(watchers, http, queue, key)
    return wrong


async def ticket_truth(
    http: httpx.AsyncClient, w: RecordingWatcher
) -> tuple[str | None, str | None, int | None]:
    """(status, ticket id, position) of the watcher's current ticket, read over HTTP."""
    r = await http.get(f"/v1/tickets/{w.ticket_id}", headers={"Authorization": f"Bearer {w.token}"})
    r.raise_for_status()
    body = r.json()
    position = body["position"] if body["status"] == "waiting" else None
    return body["status"], w.ticket_id, position


async def settle_states(
    watchers: list[RecordingWatcher], http: httpx.AsyncClient, timeout_s: float = 10.0
) -> list[tuple[str, Any, Any]]:
    """Wait, with a deadline, until every watcher's `last_state` is its ticket's truth, the
    ticket it ends on being the one it watches (a `transferred` one was not followed); return
    (ticket id, shown, truth) for each one off."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        truths = await asyncio.gather(*(ticket_truth(http, w) for w in watchers))
        wrong = [
            (w.ticket_id, w.last_state, truth)
            for w, truth in zip(watchers, truths, strict=True)
            if w.last_state != truth or truth[0] == "transferred"
        ]
        if not wrong or loop.time() >= deadline:
            return wrong
        await asyncio.sleep(0.2)


async def resync_counts(url: str) -> dict[str, int]:
    """A node's resyncs so far, by reason, from its `/readyz`."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.get("/readyz")
    counts: dict[str, int] = r.json()["resyncs"]
    return counts
