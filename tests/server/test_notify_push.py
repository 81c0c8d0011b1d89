"""Web Push end to end without the internet: a ticket joins with a push subscription of the test
push service (tests/pushservice.py), is called, and the service receives "almost your turn" and
"your turn" from the notifier, each with a valid VAPID JWT for the deployment's key, each
decrypted with the subscriber's own keys; a subscription the service says is gone is dropped."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.db import Database
from server.db.contacts import ContactTable
from tests.conftest import ServerProcess
from tests.pushservice import PushService, running


@pytest.fixture
def push_service() -> Iterator[PushService]:
    yield from running()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def push_node(
    start_server: Callable[..., ServerProcess], service: PushService, tmp_path: Path
) -> ServerProcess:
    """A node that trusts the service's CA and may reach its loopback address (tests only)."""
    ca = service.write_ca(tmp_path / f"push-ca-{secrets.token_hex(3)}.pem")
    return start_server(SSL_CERT_FILE=str(ca), VQ_WEBHOOK_ALLOW_PRIVATE="true")


class Line:
    """A queue on a node, with the staff key's shortcuts."""

    def __init__(self, http: httpx.AsyncClient, url: str, key: str) -> None:
        self.http, self.url, self.key = http, url, key
        self.slug = f"push-{secrets.token_hex(4)}"

    async def create(self, name: str) -> None:
        r = await self.http.put(
            f"{self.url}/v1/queues/{self.slug}", json={"name": name}, headers=self.auth
        )
        assert r.status_code == 201, r.text

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def join(self, contact: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {} if contact is None else {"contact": contact}
        r = await self.http.post(f"{self.url}/v1/queues/{self.slug}/tickets", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def call(self, counter: str) -> dict[str, Any]:
        r = await self.http.post(
            f"{self.url}/v1/queues/{self.slug}/call-next",
            json={"counter": counter},
            headers=self.auth,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


async def test_almost_and_your_turn_arrive_decrypted(
    start_server: Callable[..., ServerProcess],
    make_venue: Any,
    push_service: PushService,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server = push_node(start_server, push_service, tmp_path)
    push_service.server_key = (await http.get(f"{server.url}/v1/push/key")).json()["public_key"]
    _, key = await make_venue()
    line = Line(http, server.url, key)
    await line.create("Passport Office")
    for _ in range(4):
        await line.join()
    mine = await line.join({"push": push_service.subscribe("ann")})  # position 5
    await line.call("Desk 1")  # 4: nothing yet (notify_ahead is 3)
    await asyncio.sleep(1.0)
    assert push_service.received == [], push_service.refusals
    await line.call("Desk 1")  # 3: almost
    push_service.wait_for(1)
    for _ in range(2):
        await line.call("Desk 1")
    called = await line.call("Desk 9")
    assert called["ticket_id"] == mine["ticket_id"]
    got = push_service.wait_for(2)
    await asyncio.sleep(1.0)  # and nothing more
    assert len(push_service.received) == 2, push_service.refusals
    first, turn = (m.json() for m in got)
    assert first["kind"] == "almost" and turn["kind"] == "turn"
    assert first["ticket_id"] == turn["ticket_id"] == mine["ticket_id"]
    assert turn["counter"] == "Desk 9" and "Desk 9" in turn["body"]
    assert "Passport Office" in turn["title"]
    assert first["id"] != turn["id"]  # the delivery ids, for the service worker's dedup
    for message in got:
        assert message.claims["aud"] == push_service.origin
        assert message.headers["content-encoding"] == "aes128gcm"
        assert int(message.headers["ttl"]) > 0
    assert push_service.refusals == []


async def test_a_gone_subscription_is_dropped_from_the_contact(
    start_server: Callable[..., ServerProcess],
    make_venue: Any,
    push_service: PushService,
    http: httpx.AsyncClient,
    db: Database,
    tmp_path: Path,
) -> None:
    """The browser unsubscribed: the push service answers 404. The delivery is not retried, the
    subscription leaves the ticket's contact, and a later recall plans no push."""
    server = push_node(start_server, push_service, tmp_path)
    push_service.server_key = (await http.get(f"{server.url}/v1/push/key")).json()["public_key"]
    _, key = await make_venue()
    line = Line(http, server.url, key)
    await line.create("Clinic")
    subscription = push_service.subscribe("bob")
    del push_service.subscribers["bob"]  # gone: 404 from now on
    mine = await line.join({"push": subscription})  # position 1: almost at once
    number = int(mine["number"])
    contacts = ContactTable(db)
    assert await contacts.get(line.slug, number) is not None
    await line.call("Room 2")  # your turn
    deadline = time.monotonic() + 20
    while await contacts.get(line.slug, number) is not None:
        assert time.monotonic() < deadline, push_service.answered
        await asyncio.sleep(0.1)
    assert push_service.answered and set(push_service.answered) == {404}
    r = await http.post(f"{server.url}/v1/tickets/{mine['ticket_id']}/recall", headers=line.auth)
    assert r.status_code == 200, r.text
    await asyncio.sleep(2.0)
    # At most the almost and the first turn were tried (each once, 404); the recall tried none.
    assert set(push_service.answered) == {404} and len(push_service.answered) <= 2
    assert push_service.received == []
