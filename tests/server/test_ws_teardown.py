"""A watcher's objects go by reference counting the moment its socket ends, the endpoint's
session included: the real app in-process, on the node's own HTTP and WebSocket protocols.

Left in reference cycles, a reconnect storm's thousands of dead sockets wait for the cyclic
collector, which then frees them all in one pass (BENCHMARKS.md, Profile). The protocol layer's
part is checked in test_wsprotocol.py; this is the watch endpoint's.
"""

from __future__ import annotations

import gc
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from protocol.connection import Connection
from server.app import GC_THRESHOLDS, create_app
from server.config import Settings
from server.fanout import Watcher
from server.httpprotocol import protocol_class
from server.outbox import Outbox
from server.services import Services
from server.ws import _Session
from server.wsprotocol import WebSocketProtocol
from tests.server.threaded import RunningServer, eventually, live_objects, serve_in_thread

QUEUE = "teardown"


@pytest.fixture
def node(settings: Settings) -> Iterator[tuple[RunningServer, Services]]:
    app = create_app(settings)
    running = serve_in_thread(app, http=protocol_class(30.0), lifespan="on")
    try:
        yield running, app.state.services
    finally:
        running.stop()


# What a watch is made of, from its socket to its place in the fan-out.
WATCH_KINDS = (_Session, Watcher, Outbox, Connection, WebSocketProtocol)


async def test_a_watchers_session_is_freed_without_the_cyclic_collector(
    node: tuple[RunningServer, Services], make_venue: Any
) -> None:
    running, svc = node
    _venue, key = await make_venue("Teardown")
    base = f"http://127.0.0.1:{running.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        staff = {"Authorization": f"Bearer {key}"}
        assert (await http.put(f"/v1/queues/{QUEUE}", json={"name": "T"}, headers=staff)).is_success
        tokens = []
        for _ in range(3):
            joined = await http.post(f"/v1/queues/{QUEUE}/tickets", json={})
            tokens.append(joined.json()["token"])
    gc.collect()
    gc.disable()  # a cycle left behind stays until the check below
    try:
        for i, token in enumerate(tokens):
            ws = await connect(running.url("/v1/ws"), subprotocols=["vq1.json"])  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "watch", "token": token}))
            while json.loads(await ws.recv())["type"] != "position":
                pass
            if i == 0:
                await ws.close()  # the customer closes the page
            elif i == 1:
                ws.transport.abort()  # the phone loses its network: no close frame
            else:
                await ws.send(json.dumps({"type": "leave"}))  # leaves the line: the node closes
                await ws.wait_closed()
        await eventually(lambda: svc.fanout.watcher_count == 0, timeout_s=10.0)
        state = running.server.server_state
        await eventually(lambda: not state.connections and not state.tasks, timeout_s=10.0)
        assert live_objects(*WATCH_KINDS) == []
    finally:
        gc.enable()


def test_the_check_sees_a_watch_that_is_still_open(node: tuple[RunningServer, Services]) -> None:
    """The objects counted above are the ones a watch holds while it lives (so the empty list
    means freed, not missed): an open WebSocket is found."""
    running, _svc = node
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.sendall(
            b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        assert "WebSocketProtocol" in live_objects(*WATCH_KINDS)
        assert "_Session" in live_objects(*WATCH_KINDS)


def test_start_up_freezes_what_it_made_and_sets_the_collectors_thresholds(
    settings: Settings,
) -> None:
    """A storm's sockets go through the cyclic collector's young passes: the node sets its
    thresholds (`GC_THRESHOLDS`, why in server/app.py) once its services are up, and keeps
    what start-up made out of every pass."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults: an earlier node in this process set its own
    gc.unfreeze()
    running = serve_in_thread(create_app(settings), http=protocol_class(30.0), lifespan="on")
    try:
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        running.stop()
        gc.set_threshold(*before)
