"""Ticket tokens are HMAC-SHA256; an old HMAC-SHA1 token works only for a ticket issued before
the upgrade, and only until that ticket finishes (against real servers, over HTTP and WS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import httpx
import orjson
import redis.asyncio as redis
import websockets
from itsdangerous import URLSafeSerializer

from server.config import Settings
from server.keys import sha256_since_key
from tests.conftest import SECRET_KEY

SALT = "vqueue.ticket.v1"


def sha1_token(ticket_id: str, nonce: str) -> str:
    token: str = URLSafeSerializer(SECRET_KEY, salt=SALT).dumps([ticket_id, nonce])
    return token


def nonce_of(token: str) -> str:
    nonce: str = URLSafeSerializer(
        SECRET_KEY, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
    ).loads(token)[1]
    return nonce


async def set_upgrade_time(settings: Settings, at_ms: int) -> None:
    assert settings.redis_url is not None
    r = redis.Redis.from_url(settings.redis_url.reveal())
    await r.set(sha256_since_key(settings.redis_prefix), at_ms)
    await r.aclose()


async def setup_queue(node: Any, make_venue: Any) -> tuple[httpx.AsyncClient, str, dict[str, str]]:
    _, key = await make_venue("Tokens")
    auth = {"Authorization": f"Bearer {key}"}
    queue = f"tk-{secrets.token_hex(3)}"
    c = httpx.AsyncClient(base_url=node.url)
    assert (await c.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
    return c, queue, auth


async def watch_accepted(ws_url: str, token: str) -> bool:
    """True when the watch gets the ticket's state; False when it is refused (1008)."""
    async with websockets.connect(ws_url) as ws:
        await ws.send(orjson.dumps({"type": "watch", "token": token}).decode())
        first = orjson.loads(await ws.recv())
        if first["type"] == "error":
            assert first["code"] == "unauthorized", first
            await ws.wait_closed()
            assert ws.close_code == 1008
            return False
        return True


async def test_new_tokens_are_hmac_sha256(start_server: Any, make_venue: Any) -> None:
    node = start_server()
    c, queue, _ = await setup_queue(node, make_venue)
    t = (await c.post(f"/v1/queues/{queue}/tickets", json={})).json()
    payload, _, signature = t["token"].rpartition(".")
    key = hashlib.sha256(b"%s%s%s" % (SALT.encode(), b"signer", SECRET_KEY.encode())).digest()
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature
    await c.aclose()


async def test_sha1_tokens_only_for_tickets_from_before_the_upgrade(
    start_server: Any, make_venue: Any, settings: Settings
) -> None:
    # The deployment "upgraded" an hour from now: every ticket so far counts as older.
    await set_upgrade_time(settings, int(time.time() * 1000) + 3_600_000)
    node = start_server()
    c, queue, auth = await setup_queue(node, make_venue)
    old = (await c.post(f"/v1/queues/{queue}/tickets", json={})).json()
    legacy = sha1_token(old["ticket_id"], nonce_of(old["token"]))
    bearer = {"Authorization": f"Bearer {legacy}"}
    assert (await c.get(f"/v1/tickets/{old['ticket_id']}", headers=bearer)).status_code == 200
    assert await watch_accepted(node.ws_url, legacy)
    assert (await c.post(f"/v1/queues/{queue}/call-next", headers=auth)).status_code == 200
    assert (await c.post(f"/v1/tickets/{old['ticket_id']}/served", headers=auth)).status_code == 200
    # Finished: the old token is done, the new one still reads the ticket.
    assert (await c.get(f"/v1/tickets/{old['ticket_id']}", headers=bearer)).status_code == 401
    assert not await watch_accepted(node.ws_url, legacy)
    fresh = {"Authorization": f"Bearer {old['token']}"}
    assert (await c.get(f"/v1/tickets/{old['ticket_id']}", headers=fresh)).status_code == 200
    await c.aclose()


async def test_sha1_tokens_for_tickets_after_the_upgrade_are_refused(
    start_server: Any, make_venue: Any, settings: Settings
) -> None:
    await set_upgrade_time(settings, 1)
    node = start_server()
    c, queue, _ = await setup_queue(node, make_venue)
    new = (await c.post(f"/v1/queues/{queue}/tickets", json={})).json()
    legacy = sha1_token(new["ticket_id"], nonce_of(new["token"]))
    r = await c.get(
        f"/v1/tickets/{new['ticket_id']}", headers={"Authorization": f"Bearer {legacy}"}
    )
    assert r.status_code == 401
    r = await c.delete(
        f"/v1/tickets/{new['ticket_id']}", headers={"Authorization": f"Bearer {legacy}"}
    )
    assert r.status_code == 401
    assert not await watch_accepted(node.ws_url, legacy)
    assert await watch_accepted(node.ws_url, new["token"])
    await c.aclose()
