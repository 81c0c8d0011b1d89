"""The join's `contact` and the contact routes: validated, kept in PostgreSQL only (never in the
stream or the event log), replaced, removed, refused for a finished ticket, moved by a transfer."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.db import Database
from server.db.contacts import ContactTable
from tests.conftest import SharedServer
from tests.server.conftest import new_queue

POINT = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
P256DH = base64.urlsafe_b64encode(POINT).decode().rstrip("=")
# A public address given literally: the endpoint passes without DNS, so only the keys are judged.
PUBLIC_ENDPOINT = "https://8.8.8.8/push/x"
OFF_THE_CURVE = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).decode().rstrip("=")
AUTH = base64.urlsafe_b64encode(b"\x02" * 16).decode().rstrip("=")


def push(endpoint: str, **keys: str) -> dict[str, Any]:
    return {"endpoint": endpoint, "keys": {"p256dh": P256DH, "auth": AUTH, **keys}}


@pytest_asyncio.fixture
async def contacts(shared_server: SharedServer) -> AsyncIterator[ContactTable]:
    assert shared_server.settings.database_url is not None
    db = await Database.connect(shared_server.settings.database_url.reveal(), max_size=1)
    yield ContactTable(db)
    await db.close()


async def join(http: httpx.AsyncClient, queue: str, contact: Any) -> httpx.Response:
    return await http.post(f"/v1/queues/{queue}/tickets", json={"contact": contact})


def token_of(ticket: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {ticket['token']}"}


async def test_a_join_keeps_its_contact_in_postgres_only(
    http: httpx.AsyncClient, queue: str, contacts: ContactTable, shared_server: SharedServer
) -> None:
    r = await join(http, queue, {"email": "ann@example.org", "phone": "+33612345678"})
    assert r.status_code == 201, r.text
    stored = await contacts.get(queue, r.json()["number"])
    assert stored is not None
    assert (stored.email, stored.phone, stored.push) == ("ann@example.org", "+33612345678", None)
    staff = {"Authorization": f"Bearer {shared_server.key}"}
    for _ in range(100):  # the persister writes the log within a second or so
        events = await http.get(f"/v1/queues/{queue}/events", headers=staff)
        if "joined" in events.text:
            break
        await asyncio.sleep(0.1)
    assert events.status_code == 200 and "joined" in events.text
    assert "ann@example.org" not in events.text and "+336" not in events.text


@pytest.mark.parametrize(
    "contact",
    [
        {"email": "not-an-address"},
        {"email": "a@b"},
        {"email": "ann@example.org\r\nBcc: x@example.org"},
        {"phone": "0612345678"},
        {"phone": 33612345678},
        {"push": push("http://push.example.com/x")},
        {"push": push("https://127.0.0.1/x")},
        {"push": push("https://[::1]/x")},
        {"push": push("https://[::1/x")},
        {"push": push("https://169.254.169.254/latest")},
        {"push": push(PUBLIC_ENDPOINT, p256dh="AAAA")},
        {"push": push(PUBLIC_ENDPOINT, p256dh=OFF_THE_CURVE)},
        {"push": push(PUBLIC_ENDPOINT, auth="!!")},
        {"push": {"endpoint": "https://push.example.com/x"}},
        {"fax": "+33612345678"},
        "ann@example.org",
    ],
)
async def test_bad_contacts_are_refused_and_no_ticket_is_made(
    http: httpx.AsyncClient, queue: str, contact: Any
) -> None:
    r = await join(http, queue, contact)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_body"
    assert (await http.get(f"/v1/queues/{queue}")).json()["waiting"] == 0


async def test_a_push_subscription_with_usable_keys_is_kept(
    http: httpx.AsyncClient, queue: str, contacts: ContactTable
) -> None:
    r = await join(http, queue, {"push": push(PUBLIC_ENDPOINT)})
    assert r.status_code == 201, r.text
    stored = await contacts.get(queue, r.json()["number"])
    assert stored is not None and stored.push is not None
    assert stored.push["keys"] == {"p256dh": P256DH, "auth": AUTH}


async def test_put_replaces_and_delete_removes(
    http: httpx.AsyncClient, queue: str, contacts: ContactTable
) -> None:
    ticket = (await join(http, queue, None)).json()
    path = f"/v1/tickets/{ticket['ticket_id']}/contact"
    r = await http.put(path, json={"phone": "+14155550123"}, headers=token_of(ticket))
    assert r.status_code == 200, r.text
    assert r.json() == {"ticket_id": ticket["ticket_id"], "channels": ["sms"]}
    r = await http.put(path, json={"email": "bo@example.com"}, headers=token_of(ticket))
    assert r.json()["channels"] == ["email"]
    stored = await contacts.get(queue, ticket["number"])
    assert stored is not None and (stored.email, stored.phone) == ("bo@example.com", None)
    r = await http.delete(path, headers=token_of(ticket))
    assert r.status_code == 200 and r.json()["channels"] == []
    assert await contacts.get(queue, ticket["number"]) is None


async def test_only_the_tickets_own_token_and_only_while_it_is_live(
    http: httpx.AsyncClient, queue: str, shared_server: SharedServer
) -> None:
    mine, other = (await join(http, queue, None)).json(), (await join(http, queue, None)).json()
    path = f"/v1/tickets/{mine['ticket_id']}/contact"
    body = {"email": "ann@example.org"}
    assert (await http.put(path, json=body, headers=token_of(other))).status_code == 401
    assert (await http.put(path, json=body)).status_code == 401
    assert (await http.delete(path, headers=token_of(other))).status_code == 401
    assert (
        await http.delete(f"/v1/tickets/{mine['ticket_id']}", headers=token_of(mine))
    ).is_success
    r = await http.put(path, json=body, headers=token_of(mine))
    assert r.status_code == 409 and r.json()["error"]["code"] == "ticket_finished"


async def test_a_transfer_moves_the_contacts(
    http: httpx.AsyncClient, queue: str, contacts: ContactTable, shared_server: SharedServer
) -> None:
    target = await new_queue(http, shared_server)
    ticket = (await join(http, queue, {"email": "cy@example.net"})).json()
    staff = {"Authorization": f"Bearer {shared_server.key}"}
    r = await http.post(
        f"/v1/tickets/{ticket['ticket_id']}/transfer", json={"queue": target}, headers=staff
    )
    assert r.status_code == 200, r.text
    number = int(r.json()["ticket_id"].rsplit(".", 1)[1])
    assert await contacts.get(queue, ticket["number"]) is None
    moved = await contacts.get(target, number)
    assert moved is not None and moved.email == "cy@example.net"


async def test_a_finished_tickets_contacts_are_deleted_once_the_notifier_handled_it(
    http: httpx.AsyncClient, queue: str, contacts: ContactTable, shared_server: SharedServer
) -> None:
    staff = {"Authorization": f"Bearer {shared_server.key}"}
    ticket = (await join(http, queue, {"email": "di@example.net"})).json()
    waiting = (await join(http, queue, {"email": "ed@example.net"})).json()
    r = await http.post(f"/v1/queues/{queue}/call-next", json={"counter": "1"}, headers=staff)
    assert r.status_code == 200, r.text
    r = await http.post(f"/v1/tickets/{ticket['ticket_id']}/served", headers=staff)
    assert r.status_code == 200, r.text
    # Nothing else holds the queue's events: no grace, gone as soon as the event is planned
    # (the planner reads new events every half second at most).
    for _ in range(50):
        if await contacts.get(queue, ticket["number"]) is None:
            break
        await asyncio.sleep(0.1)
    assert await contacts.get(queue, ticket["number"]) is None
    kept = await contacts.get(queue, waiting["number"])
    assert kept is not None and kept.email == "ed@example.net"
