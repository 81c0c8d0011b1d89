"""After Redis loses everything, the rebuild from PostgreSQL restores the shaped line: priorities,
requeued places (including a re-spaced band), removals, recalls, transfers and settings."""

from __future__ import annotations

import time
from typing import Any

from server import transfers
from server.config import Settings
from server.db import Database
from server.queuesettings import settings_view
from server.recovery import Recovery
from server.store import Store
from tests.server.test_persister import logged
from tests.server.test_recovery import _forget, _persist_all, _queue


async def _shape(store: Store, a: str, b: str, venue: str) -> None:
    """Every kind of staff change, on two queues."""
    for i, priority in enumerate([0, 0, 5, 0, 9, 5, 0, 2] * 4):
        await store.join(a, f"a{i}", None, priority=priority)
    for _ in range(26):
        await store.call_next(a, "desk 1", None)
    called = [n for n, _ in await store.called_list(a)]
    no_show, recalled, *others = called
    await store.finish(a, no_show, "no_show")
    for n in others:  # 24 insertions at the same spot: the band is re-spaced on the way
        await store.requeue(a, n, 2)
    await store.requeue(a, no_show, 99)  # the no-show goes back, last
    await store.recall(a, recalled, "desk 7")
    for priority in (9, 2, 5, 9):
        await store.join(a, None, None, priority=priority)
    waiting = [n for n, _, _ in await store.waiting_entries(a)]
    await store.remove(a, waiting[3], "duplicate")
    await store.remove_many(a, waiting[5:7], "prank")
    for i in range(3):
        await store.join(b, f"b{i}", None)
    view = await store.ticket(a, waiting[8])
    assert view is not None and view.status == "waiting"
    ticket = {"name": view.name, "priority": view.priority}
    intent = transfers.new_intent(venue, a, waiting[8], b, ticket, 1)
    await transfers.transfer(store, intent)
    back = transfers.new_intent(venue, b, 2, a, {"name": "b1", "priority": 0}, None)
    await transfers.transfer(store, back)
    hours = {"tz": "Europe/Paris", "weekly": {"mon": [["09:00", "17:00"]]}, "at_close": "clear"}
    change = {"max_waiting": 50, "board_names": True, "hours": hours}
    fields = {
        "max_waiting": "50",
        "board_names": "1",
        "hours": '{"tz":"Europe/Paris","weekly":{"mon":[["09:00","17:00"]]},"at_close":"clear"}',
    }
    await store.change_settings(a, change, fields, int(time.time() * 1000))


async def _picture(store: Store, queue: str) -> dict[str, Any]:
    meta = await store.queue_meta(queue)
    assert meta is not None
    tickets = {}
    for number in range(1, int(meta["next"]) + 1):
        view = await store.ticket(queue, number)
        if view is not None:
            tickets[number] = (
                view.status,
                view.nonce,
                view.priority,
                view.position,
                view.counter,
                view.to_queue,
                view.to_number,
                view.to_nonce,
            )
    return {
        "line": await store.waiting_entries(queue),
        "tickets": tickets,
        "settings": settings_view(meta),
        "meta": {k: meta[k] for k in ("state", "seq", "next", "waiting")},
        "counters": await store.counters(queue),
    }


async def test_rebuild_restores_priorities_requeues_and_transfers(
    settings: Settings, store: Store, db: Database, make_venue: Any
) -> None:
    venue, _ = await make_venue("Shaped")
    a, b = await _queue(store, db, venue), await _queue(store, db, venue)
    await _shape(store, a, b, venue)
    before = {q: await _picture(store, q) for q in (a, b)}
    assert [p for _, _, p in before[a]["line"]][:4] == [9, 9, 5, 0]  # priorities differ
    await _persist_all(settings, store, db, a)
    await _persist_all(settings, store, db, b)
    assert settings.database_url is not None
    rows = await logged(settings.database_url.reveal(), a)
    kinds = {r["type"] for r in rows}
    assert {"requeued", "removed", "recalled", "transferred", "transfer_in", "settings"} <= kinds
    assert any('"respaced"' in r["data"] for r in rows if r["type"] == "requeued")

    await _forget(store)
    assert sorted(await Recovery(store, db).check()) == sorted([a, b])

    after = {q: await _picture(store, q) for q in (a, b)}
    for q in (a, b):
        for part in ("line", "tickets", "settings", "meta", "counters"):
            assert after[q][part] == before[q][part], (q, part)
    # New placements still land by priority among the rebuilt scores.
    joined = await store.join(a, "late", None, priority=5)
    fives = [i for i, (_, _, p) in enumerate(before[a]["line"]) if p >= 5]
    assert joined["position"] == len(fives) + 1
