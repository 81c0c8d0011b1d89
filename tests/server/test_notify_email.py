"""Email notifications against a real SMTP server (aiosmtpd, started by the test): a ticket with
an email gets one "almost your turn" and one "your turn" mail (distinct Message-IDs), with the
right counter, also when the node sending it is SIGKILLed mid-way and another takes over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.server.receivers import MailInbox

ADDRESS = "ann@example.org"


@pytest.fixture
def inbox() -> Iterator[MailInbox]:
    box = MailInbox()
    box.start()
    yield box
    box.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def env(inbox: MailInbox, **extra: str) -> dict[str, str]:
    return {"VQ_SMTP_URL": inbox.url, "VQ_MAIL_FROM": "queue@venue.example", **extra}


async def make_queue(http: httpx.AsyncClient, url: str, key: str, name: str) -> str:
    queue = f"mail-{int(time.time() * 1000) % 10**8}"
    r = await http.put(f"{url}/v1/queues/{queue}", json={"name": name}, headers=bearer(key))
    assert r.status_code == 201, r.text
    return queue


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def join(http: httpx.AsyncClient, url: str, queue: str, email: str | None = None) -> Any:
    body = {} if email is None else {"contact": {"email": email}}
    r = await http.post(f"{url}/v1/queues/{queue}/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def call(http: httpx.AsyncClient, url: str, queue: str, key: str, counter: str) -> Any:
    r = await http.post(
        f"{url}/v1/queues/{queue}/call-next", json={"counter": counter}, headers=bearer(key)
    )
    assert r.status_code == 200, r.text
    return r.json()


def by_kind(mails: list[EmailMessage]) -> tuple[list[EmailMessage], list[EmailMessage]]:
    almost = [m for m in mails if str(m["Subject"]).startswith("Almost your turn")]
    turn = [m for m in mails if str(m["Subject"]).startswith("Your turn")]
    assert len(almost) + len(turn) == len(mails), [m["Subject"] for m in mails]
    return almost, turn


def plain(m: EmailMessage) -> str:
    part = m.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def test_one_almost_and_one_turn_mail_with_the_counter(
    start_server: Any, make_venue: Any, inbox: MailInbox, http: httpx.AsyncClient
) -> None:
    server = start_server(**env(inbox))
    _, key = await make_venue()
    queue = await make_queue(http, server.url, key, "Bakery Front")
    for _ in range(5):
        await join(http, server.url, queue)
    mine = await join(http, server.url, queue, ADDRESS)  # position 6; notify_ahead is 3
    await call(http, server.url, queue, key, "desk 1")
    await call(http, server.url, queue, key, "desk 1")  # position 4: nothing yet
    await asyncio.sleep(1.0)
    assert inbox.to(ADDRESS) == []
    await call(http, server.url, queue, key, "desk 1")  # position 3: almost
    await wait_for(lambda: len(inbox.to(ADDRESS)) == 1)
    for _ in range(2):
        await call(http, server.url, queue, key, "desk 1")
    called = await call(http, server.url, queue, key, "desk 7")
    assert called["ticket_id"] == mine["ticket_id"]
    await wait_for(lambda: len(inbox.to(ADDRESS)) == 2)
    await asyncio.sleep(1.0)  # and nothing more
    almost, turn = by_kind(inbox.to(ADDRESS))
    assert len(almost) == 1 and len(turn) == 1
    assert almost[0]["Message-ID"] != turn[0]["Message-ID"]
    assert "desk 7" in plain(turn[0]) and str(mine["number"]) in plain(turn[0])
    assert str(turn[0]["From"]).startswith("Bakery Front <queue@venue.example>")
    html = turn[0].get_body(("html",))
    assert html is not None and "desk 7" in str(html.get_content())
    assert almost[0]["Message-ID"].startswith("<msg_")


async def test_the_sending_node_killed_mid_way_another_takes_over(
    start_server: Any, make_venue: Any, inbox: MailInbox, http: httpx.AsyncClient
) -> None:
    first = start_server(**env(inbox, VQ_NOTIFY_LEASE_S="16"))
    _, key = await make_venue()
    queue = await make_queue(http, first.url, key, "Post Office")
    mine = await join(http, first.url, queue, ADDRESS)  # position 1: almost at once
    await wait_for(lambda: len(inbox.to(ADDRESS)) == 1)
    inbox.hold_subject = "Your turn"  # the SMTP server never answers that mail's DATA
    called = await call(http, first.url, queue, key, "window 4")
    assert called["ticket_id"] == mine["ticket_id"]
    await wait_for(lambda: inbox.held)
    first.kill()  # SIGKILL, with the mail half-sent
    inbox.hold_subject = None
    second = start_server(**env(inbox, VQ_NOTIFY_LEASE_S="16"))
    await wait_for(lambda: len(inbox.to(ADDRESS)) == 2, 40)
    await asyncio.sleep(1.0)
    almost, turn = by_kind(inbox.to(ADDRESS))
    assert len(almost) == 1 and len(turn) == 1
    assert almost[0]["Message-ID"] != turn[0]["Message-ID"]
    assert "window 4" in plain(turn[0])
    ready = (await http.get(f"{second.url}/readyz")).json()
    assert ready["notifications"]["dead"] == 0
