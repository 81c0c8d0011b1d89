"""The persisted history: the staff events and stats routes, wait estimates from history, and the
estimate's measured error."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from typing import Any

import httpx
import pytest

from protocol.eta import EtaEstimator
from server.db import Database
from server.db.events import EventLog, Quote
from server.events import QueueEvent
from server.history import eta_seeder
from server.store import Store
from tests.server.test_persister import all_persisted, wait_for
from tests.server.watchers import RecordingWatcher

HOUR_MS = 3600 * 1000
BASE_MS = 1_700_002_800_000  # 2023-11-14T23:00:00Z, on the hour


def _event(
    queue: str, seq: int, kind: str, ticket: int | None, at_ms: int, **data: Any
) -> QueueEvent:
    return QueueEvent(queue, seq, kind, ticket, at_ms, "ep", data)


def _history(queue: str) -> list[QueueEvent]:
    """Four customers over two hours: waits 60, 120, 180 s; service 30, 40 s; one no-show."""
    b = BASE_MS
    return [
        _event(queue, 1, "joined", 1, b, nonce="n1", waiting=1),
        _event(queue, 2, "joined", 2, b + 1_000, nonce="n2", name="Bo", waiting=2),
        _event(queue, 3, "joined", 3, b + 2_000, nonce="n3", waiting=3),
        _event(queue, 4, "called", 1, b + 60_000, waited_ms=60_000, counter="d1", waiting=2),
        _event(queue, 5, "served", 1, b + 90_000, service_ms=30_000, waiting=2),
        _event(queue, 6, "called", 2, b + 121_000, waited_ms=120_000, waiting=1),
        _event(queue, 7, "no_show", 2, b + 161_000, service_ms=40_000, waiting=1),
        _event(queue, 8, "paused", None, b + 170_000, waiting=1),
        _event(queue, 9, "resumed", None, b + HOUR_MS, waiting=1),
        _event(queue, 10, "called", 3, b + HOUR_MS + 2_000, waited_ms=HOUR_MS, waiting=0),
        _event(queue, 11, "joined", 4, b + HOUR_MS + 3_000, nonce="n4", waiting=1),
        _event(queue, 12, "left", 4, b + HOUR_MS + 4_000, waiting=0),
    ]


async def test_insert_is_idempotent_and_stats_add_up(db: Database) -> None:
    log = EventLog(db)
    queue = "stats-q"
    events = _history(queue)
    assert (await log.insert(events[:7])).inserted == 7
    again = await log.insert(events)  # a redelivered batch overlapping the first
    assert (again.inserted, again.conflicts) == (5, [])
    changed = dataclasses.replace(events[0], kind="left")
    assert (await log.insert([changed])).conflicts == [(queue, 1)]  # reported, not stored
    await log.save_quotes(
        [Quote(queue, 1, BASE_MS + 1_000, 1, 50), Quote(queue, 2, BASE_MS + 1_000, 2, 140)]
    )
    await log.save_quotes([Quote(queue, 1, BASE_MS + 5_000, 1, 999)])  # the first quote stays

    stats = await log.stats(queue, BASE_MS, BASE_MS + 2 * HOUR_MS)
    hours = {h.hour: counts for h, counts in stats["hours"]}
    assert hours == {
        # `waiting`: the line's length after the hour's last event (for the admin page's plot).
        23: {"joined": 3, "called": 2, "served": 1, "no_show": 1, "paused": 1, "waiting": 1},
        0: {"resumed": 1, "called": 1, "joined": 1, "left": 1, "waiting": 0},
    }
    assert stats["wait_avg_s"] == pytest.approx((60 + 120 + 3600) / 3)
    assert stats["wait_p90_s"] == pytest.approx(120 + 0.8 * (3600 - 120))
    assert stats["service_avg_s"] == pytest.approx(35)
    assert stats["call_interval_avg_s"] == pytest.approx(61)  # the 3481 s gap is a break
    # Quoted 50 s at +1 s, called at +60 s: 9 s late. Quoted 140 s, called at +121 s: 20 s early.
    assert stats["eta"]["samples"] == 2
    assert stats["eta"]["mean"] == pytest.approx((9 - 20) / 2)
    assert stats["eta"]["mean_abs"] == pytest.approx(14.5)

    page = await log.page(queue, 10, 1000)
    assert [e.seq for e in page] == [11, 12] and page[0].data["nonce"] == "n4"
    assert (await log.head(queue)) is None  # events alone do not make a queue


async def test_wait_estimate_is_seeded_from_history(db: Database) -> None:
    log = EventLog(db)
    queue = "seed-q"
    now_ms = int(time.time() * 1000)
    calls = [_event(queue, i + 1, "called", i + 1, now_ms - (5 - i) * 40_000) for i in range(5)]
    await log.insert(calls)
    seed = eta_seeder(log)
    eta = EtaEstimator()
    assert eta.estimate_s(3, now_ms / 1000) is None  # nothing known: no estimate
    await seed(queue, eta)
    assert eta.calls == 5 and eta.estimate_s(3, now_ms / 1000) == 120
    live = EtaEstimator()
    live.record_call(now_ms / 1000)
    await seed(queue, live)  # live calls came first: history is not mixed in
    assert live.calls == 1
    empty = EtaEstimator()
    await seed("no-history", empty)
    assert empty.calls == 0


# -- the routes, on a real server ------------------------------------------------------------------


async def _join_call(http: httpx.AsyncClient, queue: str, auth: dict[str, str]) -> list[Any]:
    tickets = []
    for i in range(8):
        r = await http.post(f"/v1/queues/{queue}/tickets", json={"name": f"h{i}"})
        tickets.append(r.json())
    for _ in range(3):
        r = await http.post(f"/v1/queues/{queue}/call-next", json={"counter": "d9"}, headers=auth)
        assert r.status_code == 200
    assert (await http.post(f"/v1/tickets/{queue}.1/served", headers=auth)).status_code == 200
    assert (await http.post(f"/v1/tickets/{queue}.2/no-show", headers=auth)).status_code == 200
    t = tickets[5]
    bearer = {"Authorization": f"Bearer {t['token']}"}
    assert (await http.delete(f"/v1/tickets/{t['ticket_id']}", headers=bearer)).status_code == 200
    assert (await http.post(f"/v1/queues/{queue}/pause", headers=auth)).status_code == 200
    return tickets


async def test_events_route_pages_through_the_log_without_nonces(
    start_server: Any, make_venue: Any, store: Store, settings: Any
) -> None:
    _, key = await make_venue("Events")
    _, other_key = await make_venue("Other")
    auth = {"Authorization": f"Bearer {key}"}
    node = start_server()
    queue = f"h-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        assert (await http.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
        await _join_call(http, queue, auth)
        dsn = settings.database_url.reveal()
        await wait_for(lambda: all_persisted(dsn, store, [queue]), 15, "events persisted")

        url = f"/v1/queues/{queue}/events"
        r = await http.get(url, params={"after_seq": 0, "limit": 5}, headers=auth)
        assert r.status_code == 200
        first = r.json()
        assert first["queue"] == queue and first["next_after_seq"] == 5
        assert [e["seq"] for e in first["events"]] == [1, 2, 3, 4, 5]
        assert first["events"][0] == {
            **first["events"][0],
            "type": "joined",
            "ticket_id": f"{queue}.1",
            "name": "h0",
            "waiting": 1,
        }
        assert first["events"][0]["at"].endswith("Z")
        rest = (await http.get(url, params={"after_seq": 5}, headers=auth)).json()
        events = first["events"] + rest["events"]
        assert [e["seq"] for e in events] == list(range(1, 16))
        assert [e["type"] for e in events[8:]] == [
            "called",
            "called",
            "called",
            "served",
            "no_show",
            "left",
            "paused",
        ]
        assert events[8]["counter"] == "d9" and "waited_ms" in events[8]
        assert events[-1]["ticket_id"] is None
        assert "nonce" not in r.text + str(rest)
        empty = (await http.get(url, params={"after_seq": 15}, headers=auth)).json()
        assert empty == {"queue": queue, "events": [], "next_after_seq": 15}
        capped = await http.get(url, params={"limit": 5000}, headers=auth)
        assert capped.status_code == 200 and len(capped.json()["events"]) == 15

        for params in ({"after_seq": "x"}, {"after_seq": -1}, {"limit": 0}):
            bad = await http.get(url, params=params, headers=auth)
            assert bad.status_code == 400, params
        assert (await http.get(url)).status_code == 401
        other = {"Authorization": f"Bearer {other_key}"}
        assert (await http.get(url, headers=other)).status_code == 403
        assert (await http.get("/v1/queues/nope-nope/events", headers=auth)).status_code == 404

        stats = await http.get(f"/v1/queues/{queue}/stats", headers=auth)
        assert stats.status_code == 200
        body = stats.json()
        assert (body["joins"], body["called"], body["served"], body["no_shows"], body["left"]) == (
            8,
            3,
            1,
            1,
            1,
        )
        assert body["avg_wait_s"] is not None and body["p90_wait_s"] >= body["avg_wait_s"]
        assert sum(h["joins"] for h in body["throughput_per_hour"]) == 8
        assert set(body["eta_error"]) == {"samples", "mean_s", "mean_abs_s", "p90_abs_s"}
        later = await http.get(
            f"/v1/queues/{queue}/stats", params={"since": "2999-01-01T00:00:00Z"}, headers=auth
        )
        assert later.status_code == 400  # since after until
        future = await http.get(
            f"/v1/queues/{queue}/stats",
            params={"since": "2999-01-01T00:00:00Z", "until": "2999-01-02T00:00:00Z"},
            headers=auth,
        )
        assert future.json()["joins"] == 0 and future.json()["avg_wait_s"] is None
        assert (
            await http.get(f"/v1/queues/{queue}/stats", params={"since": "soon"}, headers=auth)
        ).status_code == 400


async def _first_position(w: RecordingWatcher) -> dict[str, Any]:
    async def arrived() -> bool:
        return any(m["type"] == "position" for m in w.messages)

    await wait_for(arrived, 10, "a position message")
    return next(m for m in w.messages if m["type"] == "position")


async def test_estimates_come_from_history_and_are_measured(
    start_server: Any, make_venue: Any, store: Store, settings: Any
) -> None:
    _, key = await make_venue("Eta")
    auth = {"Authorization": f"Bearer {key}"}
    node = start_server()
    queue = f"e-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        assert (await http.put(f"/v1/queues/{queue}", json={}, headers=auth)).status_code == 201
        tickets = [
            (await http.post(f"/v1/queues/{queue}/tickets", json={})).json() for _ in range(8)
        ]
        early = RecordingWatcher(tickets[7]["ticket_id"], tickets[7]["token"], node.ws_url)
        await early.start()
        assert (await _first_position(early))["eta_s"] is None  # no calls yet: no estimate
        await early.stop()
        for _ in range(4):
            r = await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
            assert r.status_code == 200
            await asyncio.sleep(0.4)
        dsn = settings.database_url.reveal()
        await wait_for(lambda: all_persisted(dsn, store, [queue]), 15, "events persisted")

    # A fresh node never saw those calls: its estimate comes from the log.
    node.stop()
    node.start()
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        w = RecordingWatcher(tickets[5]["ticket_id"], tickets[5]["token"], node.ws_url)
        await w.start()
        first = await _first_position(w)
        assert first["position"] == 2 and first["eta_s"] is not None and first["eta_s"] >= 0
        await asyncio.sleep(1.5)  # the quote is written with the persister's next round
        await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
        r = await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=auth)
        assert r.json()["ticket_id"] == tickets[5]["ticket_id"]
        await wait_for(lambda: all_persisted(dsn, store, [queue]), 15, "events persisted")

        async def measured() -> bool:
            stats = (await http.get(f"/v1/queues/{queue}/stats", headers=auth)).json()
            return bool(stats["eta_error"]["samples"] >= 1)

        await wait_for(measured, 10, "the estimate's error in the stats")
        await w.stop()


OUT_OF_RANGE = [
    ("events", {"after_seq": 2**63}),
    ("events", {"after_seq": 10**30}),
    ("stats", {"since": -99999999999999}),
    ("stats", {"until": 10**15}),
    ("stats", {"since": "0000-12-31T00:00:00Z"}),
    ("stats", {"since": "10000-01-01T00:00:00Z"}),
]


def test_out_of_range_queries_answer_400_and_the_edges_work(shared_server: Any) -> None:
    auth = {"Authorization": f"Bearer {shared_server.key}"}
    queue = f"h-{secrets.token_hex(3)}"
    with httpx.Client(base_url=shared_server.url, timeout=10, headers=auth) as http:
        assert http.put(f"/v1/queues/{queue}", json={}).status_code == 201
        for route, params in OUT_OF_RANGE:
            r = http.get(f"/v1/queues/{queue}/{route}", params=params)
            assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_query"), params
        edges = {"since": "0001-01-03T00:00:00Z", "until": "9999-12-29T00:00:00Z"}
        assert http.get(f"/v1/queues/{queue}/stats", params=edges).status_code == 200
        top = http.get(f"/v1/queues/{queue}/events", params={"after_seq": 2**63 - 1})
        assert top.status_code == 200 and top.json()["events"] == []
