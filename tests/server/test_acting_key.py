"""Staff events in the log carry the acting `key_id`: every kind of staff action, done with two
different keys of one venue, records the key that did it, in PostgreSQL and in the events API;
customers' own changes record none."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import orjson

from server.config import Settings
from server.store import Store
from tests.server.test_persister import all_persisted, logged, wait_for


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _staff_key(c: httpx.AsyncClient, admin: str, label: str) -> tuple[str, str]:
    made = await c.post("/v1/keys", json={"label": label, "role": "staff"}, headers=bearer(admin))
    assert made.status_code == 201, made.text
    return made.json()["key_id"], made.json()["staff_key"]


async def test_every_staff_event_names_the_key_that_acted(
    start_server: Any, make_venue: Any, store: Store, settings: Settings
) -> None:
    node = start_server()
    _, admin = await make_venue("Acting")
    admin_id = admin.split("_")[1]
    q, t = f"k-{secrets.token_hex(3)}", f"k-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as c:
        (id1, k1), (id2, k2) = await _staff_key(c, admin, "one"), await _staff_key(c, admin, "two")
        for slug in (q, t):
            assert (await c.put(f"/v1/queues/{slug}", json={}, headers=bearer(admin))).is_success

        async def staff(key: str, path: str, body: Any = None, method: str = "POST") -> Any:
            r = await c.request(method, path, json=body or {}, headers=bearer(key))
            assert r.is_success, (path, r.text)
            return r.json() if r.content else None

        joined = [(await c.post(f"/v1/queues/{q}/tickets", json={})).json() for _ in range(4)]
        tid = [j["ticket_id"] for j in joined]
        vip = await staff(k1, f"/v1/queues/{q}/tickets", {"priority": 5})  # joined by k1
        await staff(k2, f"/v1/queues/{q}/call-next")  # calls the priority ticket
        await staff(k1, f"/v1/tickets/{vip['ticket_id']}/recall", {"counter": "d2"})
        await staff(k2, f"/v1/tickets/{vip['ticket_id']}/served")
        await staff(k1, f"/v1/queues/{q}/call-next")  # calls tid[0]
        await staff(k2, f"/v1/tickets/{tid[0]}/no-show")
        await staff(k1, f"/v1/tickets/{tid[0]}/requeue")
        await staff(k2, f"/v1/tickets/{tid[1]}/remove", {"reason": "dup"})
        await staff(k1, f"/v1/queues/{q}/remove", {"ticket_ids": [tid[2]]})
        await staff(k2, f"/v1/tickets/{tid[3]}/transfer", {"queue": t})
        for key, action in ((k1, "pause"), (k2, "resume"), (k1, "close"), (k2, "open")):
            await staff(key, f"/v1/queues/{q}/{action}")
        await staff(k1, f"/v1/queues/{q}", {"max_waiting": 10}, method="PUT")
        last = (await c.post(f"/v1/queues/{q}/tickets", json={})).json()
        left = await c.delete(f"/v1/tickets/{last['ticket_id']}", headers=bearer(last["token"]))
        assert left.is_success
        await staff(admin, f"/v1/queues/{q}?force=true", method="DELETE")

        dsn = settings.database_url.reveal()  # type: ignore[union-attr]
        await wait_for(lambda: all_persisted(dsn, store, [q, t]), 15, "events persisted")
        events = (await c.get(f"/v1/queues/{q}/events", headers=bearer(k1))).json()["events"]
        into = (await c.get(f"/v1/queues/{t}/events", headers=bearer(k2))).json()["events"]

    acted = [(e["type"], e.get("key_id")) for e in events]
    assert acted == [
        *[("joined", None)] * 4,
        ("joined", id1),
        ("called", id2),
        ("recalled", id1),
        ("served", id2),
        ("called", id1),
        ("no_show", id2),
        ("requeued", id1),
        ("removed", id2),
        ("removed", id1),
        ("transferred", id2),
        ("paused", id1),
        ("resumed", id2),
        ("closed", id1),
        ("opened", id2),
        ("settings", id1),
        ("joined", None),
        ("left", None),
        ("removed", admin_id),  # the forced archive's removal of the requeued ticket
        ("archived", admin_id),
    ]
    assert [(e["type"], e.get("key_id")) for e in into] == [("transfer_in", id2)]
    # The same key ids are in the PostgreSQL rows themselves.
    rows = await logged(dsn, q)
    assert [orjson_key(r["data"]) for r in rows] == [k for _, k in acted]


def orjson_key(data: str) -> str | None:
    value = orjson.loads(data).get("key_id")
    return None if value is None else str(value)
