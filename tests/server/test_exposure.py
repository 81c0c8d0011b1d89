"""What the public may see: /readyz details only for operators, the QR code from VQ_PUBLIC_URL
(never the Host header), numbers only on the public board, no demo venue unless asked."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from server.config import Settings

FROM_OUTSIDE = {"X-Forwarded-For": "203.0.113.9"}
PROXIED = {"VQ_TRUSTED_PROXIES": "127.0.0.1"}


def test_readyz_details_only_for_loopback_or_the_metrics_token(start_server: Any) -> None:
    node = start_server(**PROXIED, VQ_METRICS_TOKEN="m-token-0123456789")
    outside = httpx.get(f"{node.url}/readyz", headers=FROM_OUTSIDE)
    assert outside.status_code == 200 and outside.json() == {"ready": True}
    wrong = httpx.get(f"{node.url}/readyz", headers={**FROM_OUTSIDE, "Authorization": "Bearer x"})
    assert wrong.json() == {"ready": True}
    token = {**FROM_OUTSIDE, "Authorization": "Bearer m-token-0123456789"}
    with_token = httpx.get(f"{node.url}/readyz", headers=token).json()
    local = httpx.get(f"{node.url}/readyz").json()
    for details in (with_token, local):
        assert details["ready"] is True and "resyncs" in details and "watchers" in details


async def test_qr_code_uses_the_public_url_not_the_host_header(
    start_server: Any, make_venue: Any
) -> None:
    node = start_server(VQ_PUBLIC_URL="https://queue.example.org")
    _, key = await make_venue("QR")
    queue = f"qr-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url) as c:
        auth = {"Authorization": f"Bearer {key}"}
        assert (await c.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
        svg = (await c.get(f"/v1/queues/{queue}/qr.svg", headers={"Host": "evil.example"})).text
    assert f"https://queue.example.org/q/{queue}" in svg and "evil.example" not in svg


async def test_the_public_board_shows_no_names(start_server: Any, make_venue: Any) -> None:
    node = start_server()
    _, key = await make_venue("Board")
    queue = f"bd-{secrets.token_hex(3)}"
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=node.url) as c:
        assert (await c.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
        await c.post(f"/v1/queues/{queue}/tickets", json={"name": "Secret Person"})
        r = await c.post(f"/v1/queues/{queue}/call-next", json={"counter": "1"}, headers=auth)
        assert r.status_code == 200
        board = await c.get(f"/v1/queues/{queue}/board")
    assert board.json()["counters"][0]["number"] == 1
    assert "Secret Person" not in board.text


def test_no_demo_venue_unless_asked() -> None:
    assert Settings.from_environ({}).demo is False
    assert Settings.from_environ({"VQ_DEMO": "1"}).demo is True
