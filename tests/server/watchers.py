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
from websockets.exceptions import ConnectionClosed

from protocol.closecodes import SERVICE_RESTART, TRY_AGAIN_LATER


@dataclass(eq=False)
class RecordingWatcher:
    ticket_id: str
    token: str
    ws_url: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.perf_counter() of each message
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None
    reconnects: int = 0
    stopping: bool = False

    async def start(self) -> None:
        self.ws = await connect(self.ws_url, open_timeout=20)
        await self.ws.send(json.dumps({"type": "watch", "token": self.token}))
        self.task = asyncio.get_running_loop().create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    self.arrived.append(time.perf_counter())
                    self.messages.append(json.loads(raw))
            # Like the customer page: 1012 (the server restarts, or what it showed no longer
            # holds) and 1013 (Redis unreachable for now) mean reconnect and start over;
            # anything else ends the watch.
            if ws.close_code not in (SERVICE_RESTART, TRY_AGAIN_LATER) or self.stopping:
                return
            self.reconnects += 1
            await asyncio.sleep(0.1 * min(self.reconnects, 10))
            ws = self.ws = await connect(self.ws_url, open_timeout=20)
            await ws.send(json.dumps({"type": "watch", "token": self.token}))

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


async def resync_counts(url: str) -> dict[str, int]:
    """A node's resyncs so far, by reason, from its `/readyz`."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.get("/readyz")
    counts: dict[str, int] = r.json()["resyncs"]
    return counts
