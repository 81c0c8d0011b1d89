"""`WebPushSender` against a real HTTP push service (tests/pushservice.py) that checks the VAPID
JWT and decrypts the payload; the deployment's key kept once in PostgreSQL; `GET /v1/push/key`."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator

import httpx
import pytest

from protocol.webpush import VapidKey, Verdict, b64url_encode, parse_subscription
from server.config import ConfigError, Secret, Settings
from server.db import Database
from server.netcheck import is_public
from server.webpush import WebPushSender, load_vapid_key
from tests.conftest import ServerProcess
from tests.pushservice import PushService, Subscriber, running

SUBJECT = "mailto:ops@example.org"


@pytest.fixture
def push_service() -> Iterator[PushService]:
    yield from running()


def _sender(key: VapidKey, service: PushService, allow_private: bool = True) -> WebPushSender:
    client = httpx.AsyncClient(verify=service.client_tls(), timeout=10)
    return WebPushSender(key, SUBJECT, allow_private=allow_private, client=client)


async def test_a_push_arrives_decrypted_with_a_valid_vapid(push_service: PushService) -> None:
    key = VapidKey.generate()
    push_service.server_key = key.public_key
    sub = parse_subscription(push_service.subscribe("alice"))
    sender = _sender(key, push_service)
    try:
        payload = b'{"id":"d-1","type":"called","counter":"Desk 2"}'
        result = await sender.send(sub, payload, ttl_s=600, topic="d-1")
    finally:
        await sender.aclose()
    assert result.verdict is Verdict.DELIVERED, push_service.refusals
    (got,) = push_service.wait_for(1)
    assert got.plaintext == payload
    assert got.claims["sub"] == SUBJECT
    assert got.claims["aud"] == push_service.origin
    assert got.headers["ttl"] == "600"
    assert got.headers["topic"] == "d-1"
    assert got.headers["content-type"] == "application/octet-stream"


async def test_the_push_service_refuses_another_key_and_another_secret(
    push_service: PushService,
) -> None:
    """Mutations at the wire: a sender whose VAPID key is not the one the browser subscribed
    with is refused (403, a failure), and a subscription whose auth secret is not the browser's
    cannot be decrypted (400)."""
    key, other = VapidKey.generate(), VapidKey.generate()
    push_service.server_key = key.public_key
    sub = parse_subscription(push_service.subscribe("bob"))
    # Carol's browser has Bob's ECDH key but its own auth secret; we encrypt with Bob's secret.
    carol = Subscriber(push_service.subscribers["bob"].private_key)
    carol_json = push_service.subscribe("carol", carol)
    wrong_secret = parse_subscription(carol_json | {"keys": sub.to_json()["keys"]})
    forger, sender = _sender(other, push_service), _sender(key, push_service)
    try:
        forged = await forger.send(sub, b"x", ttl_s=60)
        garbled = await sender.send(wrong_secret, b"x", ttl_s=60)
    finally:
        await forger.aclose()
        await sender.aclose()
    assert forged.verdict is Verdict.FAILED and forged.status == 403
    assert garbled.verdict is Verdict.FAILED and garbled.status == 400
    assert push_service.received == []
    assert any("not the subscription's" in r for r in push_service.refusals)
    assert "decryption failed" in push_service.refusals


async def test_each_answer_becomes_an_outcome(push_service: PushService) -> None:
    key = VapidKey.generate()
    push_service.server_key = key.public_key
    sub = parse_subscription(push_service.subscribe("dan"))
    push_service.scripted = [(410, {}), (404, {}), (429, {"Retry-After": "7"}), (503, {})]
    sender = _sender(key, push_service)
    try:
        verdicts = [await sender.send(sub, b"x", ttl_s=60) for _ in range(5)]
        push_service._http.shutdown()  # nobody answers now
        push_service._http.server_close()
        down = await sender.send(sub, b"x", ttl_s=60)
    finally:
        await sender.aclose()
    assert [(v.verdict, v.status, v.retry_after_s) for v in verdicts] == [
        (Verdict.GONE, 410, None),
        (Verdict.GONE, 404, None),
        (Verdict.RETRY, 429, 7.0),
        (Verdict.RETRY, 503, None),
        (Verdict.DELIVERED, 201, None),
    ]
    assert down.verdict is Verdict.RETRY and down.status is None


async def test_private_endpoints_are_refused_unless_allowed(push_service: PushService) -> None:
    key = VapidKey.generate()
    push_service.server_key = key.public_key
    sub = parse_subscription(push_service.subscribe("eve"))
    sender = _sender(key, push_service, allow_private=False)
    try:
        result = await sender.send(sub, b"x", ttl_s=60)
    finally:
        await sender.aclose()
    assert result.verdict is Verdict.FAILED
    assert push_service.received == []
    assert not is_public("127.0.0.1")
    assert not is_public("10.1.2.3")
    assert not is_public("::ffff:192.168.1.1")
    assert is_public("8.8.8.8")
    assert "private" in (result.detail or "")


async def test_nodes_starting_at_once_keep_one_key(settings: Settings) -> None:
    assert settings.database_url is not None
    dbs = [await Database.connect(settings.database_url.reveal(), max_size=1) for _ in range(4)]
    try:
        keys = await asyncio.gather(*(load_vapid_key(settings, db) for db in dbs))
        again = await load_vapid_key(settings, dbs[0])
    finally:
        for db in dbs:
            await db.close()
    assert len({k.public_key for k in keys}) == 1
    assert again.public_key == keys[0].public_key
    configured = VapidKey.generate()
    chosen = await _load_with(settings, b64url_encode(configured.raw()))
    assert chosen.public_key == configured.public_key


async def _load_with(settings: Settings, private_key: str) -> VapidKey:
    assert settings.database_url is not None
    db = await Database.connect(settings.database_url.reveal(), max_size=1)
    try:
        configured = dataclasses.replace(settings, vapid_private_key=Secret(private_key))
        return await load_vapid_key(configured, db)
    finally:
        await db.close()


def test_push_key_route(start_server: Callable[..., ServerProcess]) -> None:
    """Two nodes on one database answer the same key, what `applicationServerKey` takes."""
    first, second = start_server(), start_server()
    answers = [httpx.get(f"{node.url}/v1/push/key", timeout=10) for node in (first, second)]
    assert [a.status_code for a in answers] == [200, 200]
    body = answers[0].json()
    assert set(body) == {"public_key"}
    assert answers[1].json() == body
    assert "max-age" in answers[0].headers["cache-control"]
    raw = body["public_key"]
    assert "=" not in raw and len(raw) == 87  # 65 bytes, unpadded base64url


def test_vapid_settings() -> None:
    key = VapidKey.generate()
    env = {"VQ_VAPID_PRIVATE_KEY": b64url_encode(key.raw()), "VQ_VAPID_SUBJECT": "mailto:o@v.org"}
    settings = Settings.from_environ(env)
    assert settings.vapid_private_key is not None
    assert VapidKey.from_text(settings.vapid_private_key.reveal()).public_key == key.public_key
    assert settings.vapid_subject == "mailto:o@v.org"
    assert env["VQ_VAPID_PRIVATE_KEY"] not in repr(settings)
    public = Settings.from_environ({"VQ_PUBLIC_URL": "https://queue.example.org"})
    assert public.vapid_subject == "https://queue.example.org"
    assert Settings.from_environ({}).vapid_subject == "mailto:vqueue@localhost"
    with pytest.raises(ConfigError, match="VQ_VAPID_PRIVATE_KEY"):
        Settings.from_environ({"VQ_VAPID_PRIVATE_KEY": "not-a-key"})
    with pytest.raises(ConfigError, match="VQ_VAPID_SUBJECT"):
        Settings.from_environ({"VQ_VAPID_SUBJECT": "ops@example.org"})
