"""The abuse limits against real servers: join rate limits shared by two nodes through Redis,
the client address behind trusted proxies (IPv6 per /64), exemptions, and the WebSocket cap."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

LIMITED = {"VQ_RATE_EXEMPT": "", "VQ_JOIN_RATE_IP": "5/minute"}


async def make_queue(make_venue: Any, url: str) -> tuple[str, dict[str, str]]:
    _, key = await make_venue("Limits")
    auth = {"Authorization": f"Bearer {key}"}
    queue = f"l-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=url) as c:
        assert (await c.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
    return queue, auth


async def join(c: httpx.AsyncClient, queue: str, via: str | None = None) -> httpx.Response:
    headers = {} if via is None else {"X-Forwarded-For": via}
    return await c.post(f"/v1/queues/{queue}/tickets", json={}, headers=headers)


def assert_limited(r: httpx.Response, window_s: int = 60) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= window_s


async def test_the_join_limit_is_shared_by_two_nodes(start_server: Any, make_venue: Any) -> None:
    nodes = [start_server(**LIMITED), start_server(**LIMITED)]
    queue, _ = await make_queue(make_venue, nodes[0].url)
    clients = [httpx.AsyncClient(base_url=n.url) for n in nodes]
    try:
        statuses = [(await join(clients[i % 2], queue)).status_code for i in range(5)]
        assert statuses == [201] * 5  # 3 joins on one node, 2 on the other: one budget of 5
        for c in clients:
            assert_limited(await join(c, queue))
        assert (await clients[0].get(f"/v1/queues/{queue}")).json()["waiting"] == 5
    finally:
        for c in clients:
            await c.aclose()


async def test_staff_joins_and_other_queues_are_not_counted(
    start_server: Any, make_venue: Any
) -> None:
    node = start_server(**LIMITED)
    queue, auth = await make_queue(make_venue, node.url)
    other, _ = await make_queue(make_venue, node.url)
    async with httpx.AsyncClient(base_url=node.url) as c:
        for _ in range(5):
            assert (await join(c, queue)).status_code == 201
        assert_limited(await join(c, queue))
        staff = await c.post(f"/v1/queues/{queue}/tickets", json={}, headers=auth)
        assert staff.status_code == 201, staff.text
        assert (await join(c, other)).status_code == 201


async def test_trusted_proxy_names_the_client_and_ipv6_counts_per_64(
    start_server: Any, make_venue: Any
) -> None:
    proxies = "127.0.0.1,10.0.0.0/8"
    node = start_server(**{**LIMITED, "VQ_JOIN_RATE_IP": "2/minute", "VQ_TRUSTED_PROXIES": proxies})
    queue, _ = await make_queue(make_venue, node.url)
    async with httpx.AsyncClient(base_url=node.url) as c:
        # The client's own hop (left) is ignored once a non-proxy hop is found from the right.
        for _ in range(2):
            assert (await join(c, queue, "1.1.1.1, 203.0.113.5, 10.1.2.3")).status_code == 201
        assert_limited(await join(c, queue, "9.9.9.9, 203.0.113.5"))
        assert (await join(c, queue, "203.0.113.6")).status_code == 201
        assert (await join(c, queue, "2001:db8:1:2::1")).status_code == 201
        assert (await join(c, queue, "2001:db8:1:2:ffff::9")).status_code == 201
        assert_limited(await join(c, queue, "2001:db8:1:2::77"))  # same /64
        assert (await join(c, queue, "2001:db8:1:3::1")).status_code == 201


async def test_forwarded_for_is_ignored_without_trusted_proxies(
    start_server: Any, make_venue: Any
) -> None:
    node = start_server(**{**LIMITED, "VQ_JOIN_RATE_IP": "2/minute"})
    queue, _ = await make_queue(make_venue, node.url)
    async with httpx.AsyncClient(base_url=node.url) as c:
        for i in range(2):
            assert (await join(c, queue, f"198.51.100.{i}")).status_code == 201
        assert_limited(await join(c, queue, "198.51.100.99"))


async def test_exempt_networks_and_off(start_server: Any, make_venue: Any) -> None:
    exempt = start_server(VQ_RATE_EXEMPT="127.0.0.0/8", VQ_JOIN_RATE_IP="1/minute")
    off = start_server(VQ_RATE_EXEMPT="", VQ_JOIN_RATE_IP="off")
    queue, _ = await make_queue(make_venue, exempt.url)
    for node in (exempt, off):
        async with httpx.AsyncClient(base_url=node.url) as c:
            assert [(await join(c, queue)).status_code for _ in range(4)] == [201] * 4


async def test_the_per_queue_limit_counts_everyone(start_server: Any, make_venue: Any) -> None:
    env = {**LIMITED, "VQ_JOIN_RATE_QUEUE": "3/hour", "VQ_TRUSTED_PROXIES": "127.0.0.1"}
    node = start_server(**env)
    queue, _ = await make_queue(make_venue, node.url)
    async with httpx.AsyncClient(base_url=node.url) as c:
        for i in range(3):
            assert (await join(c, queue, f"203.0.113.{i}")).status_code == 201
        r = await join(c, queue, "203.0.113.200")
        assert_limited(r, 3600)
        assert int(r.headers["Retry-After"]) > 60  # the hour's window, not the minute's


@pytest.mark.parametrize("exempt", [False, True])
async def test_websockets_per_address_are_capped_before_accept(
    start_server: Any, exempt: bool
) -> None:
    node = start_server(VQ_WS_PER_IP="3", VQ_RATE_EXEMPT="127.0.0.1" if exempt else "")
    opened = [await websockets.connect(node.ws_url) for _ in range(3)]
    try:
        if exempt:
            extra = await websockets.connect(node.ws_url)
            await extra.close()
            return
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(node.ws_url)
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"]
        await opened.pop().close()
        # The closed socket's slot is free again (the server notices the close first).
        for _ in range(100):
            try:
                opened.append(await websockets.connect(node.ws_url))
                break
            except InvalidStatus:
                continue
        assert len(opened) == 3
    finally:
        for ws in opened:
            await ws.close()
