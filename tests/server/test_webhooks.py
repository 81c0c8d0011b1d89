"""Webhooks against a real receiver that verifies the Standard Webhooks signature: every event of
a queue, each delivery id once on 2xx, first attempts in seq order; a receiver down for a while
gets everything after it returns; one that always fails ends in the dead letters, and a retry
from there delivers it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from server.notify.plan import EVENT_TYPES
from tests.conftest import ServerProcess
from tests.server.receivers import Received, WebhookReceiver

ALL_EVENTS = sorted(set(EVENT_TYPES.values()))
FAST_RETRIES = "0.3,0.3,0.3"


async def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def setup(
    server: ServerProcess, key: str, receiver: WebhookReceiver, http: httpx.AsyncClient
) -> tuple[str, str]:
    staff = {"Authorization": f"Bearer {key}"}
    queue = f"wh-{int(time.time() * 1000) % 10**8}"
    r = await http.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ALL_EVENTS}, headers=staff
    )
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]
    assert receiver.secret.startswith("whsec_")
    assert (
        await http.put(f"/v1/queues/{queue}", json={"name": "Q"}, headers=staff)
    ).status_code == 201
    return queue, r.json()["webhook_id"]


async def traffic(http: httpx.AsyncClient, key: str, queue: str, joins: int) -> None:
    staff = {"Authorization": f"Bearer {key}"}
    tickets = [(await http.post(f"/v1/queues/{queue}/tickets")).json() for _ in range(joins)]
    await http.post(f"/v1/queues/{queue}/pause", headers=staff)
    await http.post(f"/v1/queues/{queue}/resume", headers=staff)
    for _ in range(joins // 2):
        called = (
            await http.post(
                f"/v1/queues/{queue}/call-next", json={"counter": "desk 2"}, headers=staff
            )
        ).json()
        await http.post(f"/v1/tickets/{called['ticket_id']}/served", headers=staff)
    last = tickets[-1]
    await http.delete(
        f"/v1/tickets/{last['ticket_id']}", headers={"Authorization": f"Bearer {last['token']}"}
    )


async def logged_events(
    http: httpx.AsyncClient, key: str, queue: str, count: int
) -> list[dict[str, Any]]:
    """The queue's events that webhooks carry, from the event log, once it has `count` of them."""
    staff = {"Authorization": f"Bearer {key}"}
    found: list[dict[str, Any]] = []

    async def poll() -> None:
        nonlocal found
        r = await http.get(f"/v1/queues/{queue}/events", params={"limit": 1000}, headers=staff)
        found = [e for e in r.json()["events"] if e["type"] in EVENT_TYPES]

    for _ in range(200):
        await poll()
        if len(found) >= count:
            break
        await asyncio.sleep(0.1)
    return found


def first_attempt_seqs(calls: list[Received]) -> list[int]:
    seen: set[str] = set()
    out = []
    for c in calls:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c.body["data"]["seq"])
    return out


async def test_every_event_once_signed_and_in_seq_order(start_server: Any, make_venue: Any) -> None:
    server = start_server(VQ_WEBHOOK_ALLOW_PRIVATE="true", VQ_WEBHOOK_RETRY_S=FAST_RETRIES)
    _, key = await make_venue()
    async with (
        WebhookReceiver().running() as receiver,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        queue, _ = await setup(server, key, receiver, http)
        await traffic(http, key, queue, 8)
        events = await logged_events(http, key, queue, 8 + 2 + 4 * 2 + 1)
        await wait_for(lambda: len(receiver.delivered()) >= len(events))
        await asyncio.sleep(0.5)  # nothing more comes
    assert receiver.forged == 0
    got = receiver.delivered()
    assert len({c.id for c in got}) == len(got) == len(events)
    assert [c.body["data"]["seq"] for c in got] == [e["seq"] for e in events]
    assert [c.body["type"] for c in got] == [EVENT_TYPES[e["type"]] for e in events]
    called = [c.body["data"] for c in got if c.body["type"] == "ticket.called"]
    assert called and all(
        d["counter"] == "desk 2" and d["ticket_id"].startswith(queue) for d in called
    )
    assert all(set(c.body) == {"type", "timestamp", "data"} for c in got)


async def test_a_receiver_down_for_a_while_gets_everything_after(
    start_server: Any, make_venue: Any
) -> None:
    server = start_server(VQ_WEBHOOK_ALLOW_PRIVATE="true", VQ_WEBHOOK_RETRY_S="0.5,1,1,1,1,1,1,1")
    _, key = await make_venue()
    async with (
        WebhookReceiver(status=503).running() as receiver,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        queue, _ = await setup(server, key, receiver, http)
        await traffic(http, key, queue, 6)
        events = await logged_events(http, key, queue, 6 + 2 + 3 * 2 + 1)
        await wait_for(lambda: len({c.id for c in receiver.calls}) >= 3)
        receiver.status = 200
        await wait_for(lambda: len(receiver.delivered()) >= len(events), 30)
        await asyncio.sleep(0.5)
    got = receiver.delivered()
    assert len({c.id for c in got}) == len(got) == len(events)
    assert sorted(c.body["data"]["seq"] for c in got) == [e["seq"] for e in events]
    assert first_attempt_seqs(receiver.calls) == sorted(first_attempt_seqs(receiver.calls))
    refused_ids = {c.id for c in receiver.calls if c.status == 503}
    assert refused_ids <= {c.id for c in got}  # each refused one came again, with its id


async def test_always_failing_goes_dead_and_a_retry_delivers(
    start_server: Any, make_venue: Any
) -> None:
    server = start_server(VQ_WEBHOOK_ALLOW_PRIVATE="true", VQ_WEBHOOK_RETRY_S=FAST_RETRIES)
    _, key = await make_venue()
    staff = {"Authorization": f"Bearer {key}"}
    async with (
        WebhookReceiver(status=500).running() as receiver,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        queue, webhook = await setup(server, key, receiver, http)
        await http.post(f"/v1/queues/{queue}/tickets")
        dead: list[dict[str, Any]] = []

        async def poll_dead() -> None:
            nonlocal dead
            r = await http.get(
                f"/v1/webhooks/{webhook}/deliveries", params={"status": "dead"}, headers=staff
            )
            assert r.status_code == 200, r.text
            dead = r.json()["deliveries"]

        for _ in range(100):
            await poll_dead()
            if dead:
                break
            await asyncio.sleep(0.1)
        assert len(dead) == 1, dead
        assert dead[0]["type"] == "ticket.joined" and dead[0]["attempts"] == 4
        assert dead[0]["last_error"] == "HTTP 500"
        assert [c.id for c in receiver.calls] == [dead[0]["delivery_id"]] * 4
        receiver.status = 204
        path = f"/v1/webhooks/{webhook}/deliveries/{dead[0]['delivery_id']}/retry"
        r = await http.post(path, headers=staff)
        assert r.status_code == 200, r.text
        await wait_for(lambda: len(receiver.delivered()) == 1)
        assert receiver.delivered()[0].id == dead[0]["delivery_id"]
        await poll_dead()
        assert dead == []
        assert (await http.post(path, headers=staff)).status_code == 404  # no longer dead
