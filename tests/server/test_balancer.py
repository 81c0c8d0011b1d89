"""Two nodes behind a real HAProxy 2.6 (`make balancer-deps`; skipped without it): WebSockets are
proxied, watchers spread over both nodes stay exact, and the client's address reaches the node
through X-Forwarded-For."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.embedded import free_port
from tests.conftest import ServerProcess
from tests.server.watchers import RecordingWatcher, settle

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy not installed (make balancer-deps)"
)
CLIENT_ADDRESS = "127.0.0.2"  # the test's own source address, distinct from the balancer's
WATCHERS = 24


def _config(port: int, nodes: list[ServerProcess]) -> str:
    # The shape of deploy/haproxy.cfg, on loopback ports.
    servers = "\n".join(f"    server n{i} 127.0.0.1:{n.port}" for i, n in enumerate(nodes))
    return f"""
defaults
    mode http
    option forwardfor
    option http-server-close
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h

frontend vqueue
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance leastconn
{servers}
"""


@pytest.fixture
def balancer(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> Iterator[tuple[str, list[ServerProcess]]]:
    nodes = [start_server(VQ_TRUSTED_PROXIES="127.0.0.1") for _ in range(2)]
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(_config(port, nodes))
    with (tmp_path / "haproxy.log").open("wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "haproxy.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "haproxy did not listen"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}", nodes
    finally:
        proc.terminate()
        proc.wait(10)


async def test_watchers_through_the_balancer_reach_both_nodes_and_stay_exact(
    balancer: tuple[str, list[ServerProcess]], make_venue: Any
) -> None:
    address, nodes = balancer
    _, key = await make_venue("Balanced")
    auth = {"Authorization": f"Bearer {key}"}
    queue = f"b-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=20) as http:
        assert (await http.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
        watchers = []
        for _ in range(WATCHERS):
            ticket = (await http.post(f"/v1/queues/{queue}/tickets", json={})).json()
            w = RecordingWatcher(ticket["ticket_id"], ticket["token"], f"ws://{address}/v1/ws")
            await w.start()
            watchers.append(w)
        # leastconn spreads the long-lived sockets: each node holds some of them
        for node in nodes:
            ready = (await http.get(f"{node.url}/readyz")).json()
            assert ready["watchers"] > 0, ready
        for _ in range(WATCHERS // 3):
            r = await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
            assert r.status_code == 200, r.text
        assert await settle(watchers, http, queue, key) == []
        assert sum("called" in w.kinds for w in watchers) == WATCHERS // 3
        for w in watchers:
            await w.stop()


async def test_the_client_address_reaches_the_node(
    balancer: tuple[str, list[ServerProcess]],
) -> None:
    """A refused WebSocket (foreign Origin) is logged with the client's address, which the node
    can only know from the balancer's X-Forwarded-For: the TCP peer is the balancer."""
    address, nodes = balancer
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        async with connect(
            f"ws://{address}/v1/ws",
            origin="https://elsewhere.example",  # type: ignore[arg-type]
            local_addr=(CLIENT_ADDRESS, 0),
        ) as ws:
            await ws.recv()
    deadline = time.monotonic() + 10
    expected = f"(client {CLIENT_ADDRESS})"
    while not any(expected in n.log_text() for n in nodes):
        assert time.monotonic() < deadline, [n.log_text()[-800:] for n in nodes]
        await asyncio.sleep(0.05)
