"""Opening hours across 3 real server processes: the queue opens and closes by itself, one event
per boundary however many nodes race for it; `clear` removes the waiting line at closing (called
tickets stay) and every watcher, on whichever node, is told; a manual change holds until the next
boundary."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from server.config import Settings
from server.keys import queue_keys
from tests.server.watchers import RecordingWatcher

NODES = 3


def zone_and_day(now: datetime, lead_s: int) -> tuple[str, str, datetime]:
    """A fixed-offset zone where `now` and the next minutes fall on one local day."""
    for hours in range(-12, 13):
        name = "UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"
        local = now + timedelta(hours=hours)
        if 3600 < local.hour * 3600 + local.minute * 60 < 22 * 3600:
            break
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    return name, day, local + timedelta(seconds=lead_s)


def clock(at: datetime) -> str:
    """A wall time as the queue's summary writes it back: whole minutes as HH:MM."""
    return at.strftime("%H:%M" if at.second == 0 else "%H:%M:%S")


async def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(120)
async def test_hours_open_and_close_once_across_nodes(
    start_server: Any, make_venue: Any, settings: Settings
) -> None:
    _, key = await make_venue("Hours")
    auth = {"Authorization": f"Bearer {key}"}
    nodes = [start_server() for _ in range(NODES)]
    http = [httpx.AsyncClient(base_url=n.url, timeout=10) for n in nodes]
    queue = f"h-{secrets.token_hex(3)}"
    assert (await http[0].put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
    tickets = [(await http[i % NODES].post(f"/v1/queues/{queue}/tickets")).json() for i in range(5)]
    called = (await http[1].post(f"/v1/queues/{queue}/call-next", headers=auth)).json()
    await http[2].post(f"/v1/queues/{queue}/close", headers=auth)  # closed until the opening
    watchers = await watch_on_every_node(tickets, nodes)

    # Subscribe as a node would: the notices every node's watchers are moved by.
    assert settings.redis_url is not None
    sub = aioredis.from_url(settings.redis_url.reveal()).pubsub()
    await sub.ssubscribe(queue_keys(settings.redis_prefix, queue).channel)  # SPUBLISH

    tz, day, opening = zone_and_day(datetime.now(UTC), 4)
    closing = opening + timedelta(seconds=3)
    hours = {"tz": tz, "weekly": {day: [[clock(opening), clock(closing)]]}, "at_close": "clear"}
    r = await http[0].put(f"/v1/queues/{queue}", json={"hours": hours}, headers=auth)
    assert r.status_code == 200 and r.json()["hours"] == hours
    assert r.json()["state"] == "closed"  # setting hours acts on no past boundary

    async def state() -> str:
        return str((await http[0].get(f"/v1/queues/{queue}")).json()["state"])

    await wait_for(lambda: _is(state, "open"), 20, "the opening")
    await wait_for(lambda: _is(state, "closed"), 20, "the closing")
    await asyncio.sleep(2.5)  # several more ticks of every node's scheduler: nothing repeats

    async def logged() -> list[dict[str, Any]]:  # the event log, once the persister has it all
        r = await http[0].get(f"/v1/queues/{queue}/events", headers=auth)
        events: list[dict[str, Any]] = r.json()["events"]
        meta = (await http[0].get(f"/v1/queues/{queue}")).json()
        return events if events and events[-1]["type"] == "closed" and meta else []

    events = await wait_for(logged, 20, "the events persisted")
    kinds = [e["type"] for e in events]
    assert kinds.count("opened") == 1 and kinds.count("closed") == 2  # manual close + boundary
    removal = [e for e in events if e["type"] == "removed"]
    assert len(removal) == 1 and removal[0]["reason"] == "closing"
    waiting = [t for t in tickets if t["ticket_id"] != called["ticket_id"]]
    assert sorted(removal[0]["ticket_ids"]) == sorted(t["ticket_id"] for t in waiting)

    # Every watcher is told: the removal notice names every removed ticket, and each ticket
    # reads as removed; the called one stays called.
    removed = await removal_notices(sub)
    assert sorted(removed[0]["ns"]) == sorted(t["number"] for t in waiting)
    for t in tickets:
        got = (await http[2].get(f"/v1/tickets/{t['ticket_id']}", headers=_bearer(t))).json()
        expected = "called" if t["ticket_id"] == called["ticket_id"] else "removed"
        assert got["status"] == expected

    await every_watcher_told(watchers, called["ticket_id"])

    # A manual open holds until the next boundary (next week): nothing closes it again, not
    # even a node started now, whose scheduler has seen no boundary yet.
    await http[1].post(f"/v1/queues/{queue}/open", headers=auth)
    late = start_server()
    async with httpx.AsyncClient(base_url=late.url, timeout=10) as fresh:
        await asyncio.sleep(2.5)
        assert (await fresh.get(f"/v1/queues/{queue}")).json()["state"] == "open"
    await sub.aclose()
    await asyncio.gather(*(w.stop() for w in watchers))
    for c in http:
        await c.aclose()


async def removal_notices(sub: Any) -> list[dict[str, Any]]:
    """The `removed` notices among those published so far (at least the first three)."""
    notices = []
    while (message := await sub.get_message(timeout=0.2)) is not None or len(notices) < 3:
        if message and message["type"] == "smessage":
            notices.append(orjson.loads(message["data"]))
    return [n for n in notices if n["k"] == "removed"]


async def watch_on_every_node(tickets: list[Any], nodes: list[Any]) -> list[RecordingWatcher]:
    watchers = [
        RecordingWatcher(t["ticket_id"], t["token"], nodes[i % NODES].ws_url)
        for i, t in enumerate(tickets)
    ]
    await asyncio.gather(*(w.start() for w in watchers))
    return watchers


async def every_watcher_told(watchers: list[RecordingWatcher], called_id: str) -> None:
    """Each watcher heard it live: the opening, then the closing (removed ones: their status)."""

    def status_of(tid: str) -> str:
        return "called" if tid == called_id else "removed"

    async def told() -> bool:
        return all(w.last_state[0] == status_of(w.ticket_id) for w in watchers)

    await wait_for(told, 10, "every watcher told")
    for w in watchers:
        states = [m["state"] for m in w.messages if m["type"] == "queue"]
        assert states[0] == "closed" and "open" in states, (w.ticket_id, states)
        if status_of(w.ticket_id) == "called":
            assert states[-1] == "closed", states
            assert not w.closed  # a called ticket keeps watching
        else:
            assert w.closed  # a removed ticket's watch ends, normally


async def _is(read: Any, expected: str) -> bool:
    return bool(await read() == expected)


def _bearer(ticket: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {ticket['token']}"}
