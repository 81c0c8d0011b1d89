"""Archiving a queue (`DELETE /v1/queues/{queue}`) against a real server: admin only, refused
while tickets wait unless forced (the forced removal tells the watchers and is logged), and what
archived means afterwards everywhere; the rebuild from PostgreSQL keeps it archived."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from server.config import Settings
from server.db import Database
from server.recovery import Recovery
from server.store import Store
from tests.server.test_persister import all_persisted, wait_for
from tests.server.test_recovery import _forget, _persist_all, _queue
from tests.server.watchers import RecordingWatcher


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def _archived_everywhere(c: httpx.AsyncClient, a: str, b: str, admin: str) -> None:
    """Archived: not listed, no joins, no reopening, slug not reusable, the summary says so."""
    listed = await c.get("/v1/queues", headers=bearer(admin))
    assert [s["queue"] for s in listed.json()] == [b]
    assert code(await c.post(f"/v1/queues/{a}/tickets", json={})) == (409, "queue_closed")
    for action in ("open", "resume", "pause"):
        r = await c.post(f"/v1/queues/{a}/{action}", json={}, headers=bearer(admin))
        assert code(r) == (409, "queue_archived"), action
    again = await c.put(f"/v1/queues/{a}", json={"name": "Again"}, headers=bearer(admin))
    assert code(again) == (409, "queue_archived")
    info = (await c.get(f"/v1/queues/{a}")).json()
    assert (info["state"], info["archived"]) == ("closed", True)


async def test_archive_forced_tells_watchers_and_closes_the_queue_for_good(
    start_server: Any, make_venue: Any, store: Store, settings: Settings
) -> None:
    node = start_server()
    _, admin = await make_venue("Archive")
    a, b = f"a-{secrets.token_hex(3)}", f"a-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as c:
        made = await c.post("/v1/keys", json={"role": "staff"}, headers=bearer(admin))
        staff = made.json()
        for q in (a, b):
            assert (await c.put(f"/v1/queues/{q}", json={}, headers=bearer(admin))).is_success
        listed = await c.get("/v1/queues", headers=bearer(staff["staff_key"]))
        assert [s["queue"] for s in listed.json()] == sorted([a, b])
        assert all(s["archived"] is False and "max_waiting" in s for s in listed.json())
        joined = [(await c.post(f"/v1/queues/{a}/tickets", json={})).json() for _ in range(2)]
        watcher = RecordingWatcher(joined[1]["ticket_id"], joined[1]["token"], node.ws_url)
        await watcher.start()
        board = await connect(node.ws_url)
        await board.send(json.dumps({"type": "watch_board", "queue": a}))
        while json.loads(await board.recv())["type"] != "board":
            pass

        assert code(await c.delete(f"/v1/queues/{a}", headers=bearer(staff["staff_key"]))) == (
            403,
            "forbidden",
        )
        assert code(await c.delete("/v1/queues/nope-zz", headers=bearer(admin))) == (
            404,
            "queue_not_found",
        )
        assert code(await c.delete(f"/v1/queues/{a}", headers=bearer(admin))) == (
            409,
            "queue_not_empty",
        )
        bad = await c.delete(f"/v1/queues/{a}", params={"force": "yes"}, headers=bearer(admin))
        assert code(bad) == (400, "invalid_query")
        forced = await c.delete(f"/v1/queues/{a}", params={"force": "true"}, headers=bearer(admin))
        assert forced.status_code == 200, forced.text
        assert forced.json() | {"archived_at": "-"} == {
            "queue": a,
            "archived": True,
            "archived_at": "-",
            "removed": 2,
        }

        async def told() -> bool:
            return any(m.get("status") == "removed" for m in watcher.messages)

        await wait_for(told, 5, "the watcher told its ticket was removed")
        await watcher.stop()
        while (frame := json.loads(await asyncio.wait_for(board.recv(), 5)))["type"] != "queue":
            pass
        assert frame["state"] == "closed"  # the board's view is told the queue closed
        await board.close()

        await _archived_everywhere(c, a, b, admin)
        repeat = await c.delete(f"/v1/queues/{a}", headers=bearer(admin))
        assert repeat.status_code == 200 and repeat.json()["removed"] == 0

        # Events and statistics stay readable to staff.
        dsn = settings.database_url.reveal()  # type: ignore[union-attr]
        await wait_for(lambda: all_persisted(dsn, store, [a]), 15, "events persisted")
        events = await c.get(f"/v1/queues/{a}/events", headers=bearer(staff["staff_key"]))
        tail = events.json()["events"][-2:]
        assert [(e["type"], e.get("reason")) for e in tail] == [
            ("removed", "archived"),
            ("archived", None),
        ]
        assert tail[1]["was"] == "open"
        assert {e["key_id"] for e in tail} == {admin.split("_")[1]}
        stats = await c.get(f"/v1/queues/{a}/stats", headers=bearer(staff["staff_key"]))
        assert stats.status_code == 200 and stats.json()["removed"] == 2
        assert stats.json()["throughput_per_hour"][-1]["waiting"] == 0


async def test_an_empty_queue_archives_without_force(start_server: Any, make_venue: Any) -> None:
    node = start_server()
    _, admin = await make_venue("Empty")
    q = f"a-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as c:
        assert (await c.put(f"/v1/queues/{q}", json={}, headers=bearer(admin))).is_success
        joined = (await c.post(f"/v1/queues/{q}/tickets", json={})).json()
        called = await c.post(f"/v1/queues/{q}/call-next", json={}, headers=bearer(admin))
        assert called.json()["ticket_id"] == joined["ticket_id"]
        archived = await c.delete(f"/v1/queues/{q}", headers=bearer(admin))
        assert archived.status_code == 200 and archived.json()["removed"] == 0
        # A called ticket can still be finished.
        served = await c.post(f"/v1/tickets/{joined['ticket_id']}/served", headers=bearer(admin))
        assert served.status_code == 200, served.text


async def test_rebuild_keeps_the_queue_archived(
    settings: Settings, store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue("Rebuilt archive")
    q = await _queue(store, db, venue)
    await store.join(q, "x", None)
    hours = {"tz": "UTC", "weekly": {"mon": [["09:00", "17:00"]]}, "at_close": "keep"}
    fields = {"hours": '{"tz":"UTC","weekly":{"mon":[["09:00","17:00"]]},"at_close":"keep"}'}
    await store.change_settings(q, {"hours": hours}, fields, int(time.time() * 1000))
    await store.archive(q, True)
    await db.archive_queue(q, venue)
    before = await store.queue_meta(q)
    assert before is not None and before["state"] == "closed" and "hours" not in before
    await _persist_all(settings, store, db, q)
    await _forget(store)
    assert await Recovery(store, db).check() == [q]
    after = await store.queue_meta(q)
    assert after is not None
    assert {k: after.get(k) for k in ("state", "archived", "hours", "waiting")} == {
        k: before.get(k) for k in ("state", "archived", "hours", "waiting")
    }
    assert after["archived"] == before["archived"]
    assert await db.venue_queues(venue) == []
