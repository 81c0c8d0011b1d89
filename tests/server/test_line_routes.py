"""Staff shaping the line over HTTP (contract-v2 "Staff: shaping the line"), against a real server
process: remove, bulk remove, recall, requeue, transfer, priority joins and settings, with the
bad input each route must refuse with a 4xx."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import SharedServer
from tests.server.test_http_api import bearer, error_code, staff


@pytest.fixture
def client(shared_server: SharedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


@pytest.fixture
def key(shared_server: SharedServer) -> dict[str, str]:
    return staff(shared_server.key)


def new_queue(client: httpx.Client, key: dict[str, str], **body: Any) -> str:
    slug = f"l-{secrets.token_hex(4)}"
    r = client.put(f"/v1/queues/{slug}", json={"name": "Desk", **body}, headers=key)
    assert r.status_code == 201, r.text
    return slug


def join(client: httpx.Client, queue: str, **kwargs: Any) -> dict[str, Any]:
    r = client.post(f"/v1/queues/{queue}/tickets", **kwargs)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def line(client: httpx.Client, queue: str, key: dict[str, str]) -> list[str]:
    r = client.get(f"/v1/queues/{queue}/tickets", headers=key)
    return [t["ticket_id"] for t in r.json()["waiting"]]


def test_priority_joins_are_called_first_fifo_within(
    client: httpx.Client, key: dict[str, str]
) -> None:
    q = new_queue(client, key)
    plain = [join(client, q) for _ in range(2)]
    urgent = join(client, q, json={"priority": 5}, headers=key)
    assert urgent["position"] == 1
    again = join(client, q, json={"priority": 5, "name": "Bo"}, headers=key)
    assert again["position"] == 2
    top = join(client, q, json={"priority": 9}, headers=key)
    assert top["position"] == 1
    expected = [top, urgent, again, *plain]
    assert line(client, q, key) == [t["ticket_id"] for t in expected]
    order = [client.post(f"/v1/queues/{q}/call-next", headers=key).json() for _ in expected]
    assert [c["ticket_id"] for c in order] == [t["ticket_id"] for t in expected]


@pytest.mark.parametrize("priority", [-1, 10, 1.5, "5", True, None])
def test_bad_priority_is_400(client: httpx.Client, key: dict[str, str], priority: Any) -> None:
    q = new_queue(client, key)
    r = client.post(f"/v1/queues/{q}/tickets", json={"priority": priority}, headers=key)
    assert (r.status_code, error_code(r)) == (400, "invalid_body")


def test_priority_without_a_staff_key_is_400(client: httpx.Client, key: dict[str, str]) -> None:
    q = new_queue(client, key)
    r = client.post(f"/v1/queues/{q}/tickets", json={"priority": 1})
    assert (r.status_code, error_code(r)) == (400, "invalid_body")
    t = join(client, q)  # a credential that is not a staff key is refused before the body
    r = client.post(f"/v1/queues/{q}/tickets", json={"priority": 1}, headers=bearer(t["token"]))
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


def test_priority_with_another_venues_key_is_403(
    client: httpx.Client, key: dict[str, str], shared_server: SharedServer
) -> None:
    q = new_queue(client, key)
    r = client.post(
        f"/v1/queues/{q}/tickets", json={"priority": 1}, headers=staff(shared_server.other_key)
    )
    assert (r.status_code, error_code(r)) == (403, "forbidden")


def test_remove_one_and_many(client: httpx.Client, key: dict[str, str]) -> None:
    q = new_queue(client, key)
    tickets = [join(client, q) for _ in range(6)]
    ids = [t["ticket_id"] for t in tickets]
    r = client.post(f"/v1/tickets/{ids[1]}/remove", json={"reason": "prank"}, headers=key)
    assert r.json() == {"ticket_id": ids[1], "status": "removed"}
    r = client.post(f"/v1/tickets/{ids[1]}/remove", headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_finished")
    got = client.get(f"/v1/tickets/{ids[1]}", headers=bearer(tickets[1]["token"])).json()
    assert (got["status"], got["position"]) == ("removed", None)
    r = client.post(f"/v1/queues/{q}/remove", json={"ticket_ids": [ids[1], ids[3]]}, headers=key)
    assert r.json() == {"queue": q, "removed": 1}  # the first was removed already
    assert line(client, q, key) == [ids[0], ids[2], ids[4], ids[5]]
    got = client.get(f"/v1/tickets/{ids[4]}", headers=bearer(tickets[4]["token"])).json()
    assert got["position"] == 3
    r = client.post(f"/v1/queues/{q}/remove", json={"all": True}, headers=key)
    assert r.json()["removed"] == 4 and line(client, q, key) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"all": False},
        {"all": True, "ticket_ids": []},
        {"ticket_ids": []},
        {"ticket_ids": "x.1"},
        {"ticket_ids": [1, 2]},
        {"ticket_ids": ["other.1"]},
        {"ticket_ids": ["x.1"] * 1001},
    ],
)
def test_bad_bulk_remove_is_400(client: httpx.Client, key: dict[str, str], body: Any) -> None:
    q = new_queue(client, key)
    r = client.post(f"/v1/queues/{q}/remove", json=body, headers=key)
    assert (r.status_code, error_code(r)) == (400, "invalid_body"), r.text


def test_recall_and_requeue(client: httpx.Client, key: dict[str, str]) -> None:
    q = new_queue(client, key)
    tickets = [join(client, q, json={"name": f"n{i}"}) for i in range(4)]
    ids = [t["ticket_id"] for t in tickets]
    r = client.post(f"/v1/tickets/{ids[0]}/recall", headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_not_called")
    client.post(f"/v1/queues/{q}/call-next", json={"counter": "desk 1"}, headers=key)
    r = client.post(f"/v1/tickets/{ids[0]}/recall", json={"counter": "desk 2"}, headers=key)
    assert r.json() == {"ticket_id": ids[0], "name": "n0", "counter": "desk 2", "status": "called"}
    r = client.post(f"/v1/tickets/{ids[0]}/requeue", json={"position": 2}, headers=key)
    assert r.json()["position"] == 2 and r.json()["status"] == "waiting"
    assert line(client, q, key) == [ids[1], ids[0], ids[2], ids[3]]
    got = client.get(f"/v1/tickets/{ids[0]}", headers=bearer(tickets[0]["token"]))
    assert got.json()["position"] == 2  # the same token keeps working
    r = client.post(f"/v1/tickets/{ids[0]}/requeue", headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_waiting")
    # a no-show goes back too; past the end means last
    client.post(f"/v1/queues/{q}/call-next", headers=key)
    client.post(f"/v1/tickets/{ids[1]}/no-show", headers=key)
    r = client.post(f"/v1/tickets/{ids[1]}/requeue", json={"position": 99}, headers=key)
    assert r.json()["position"] == 4
    assert line(client, q, key)[-1] == ids[1]
    # a served ticket cannot come back
    client.post(f"/v1/queues/{q}/call-next", headers=key)
    client.post(f"/v1/tickets/{ids[0]}/served", headers=key)
    r = client.post(f"/v1/tickets/{ids[0]}/requeue", headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_finished")


@pytest.mark.parametrize("position", [0, -3, 1.5, "2", True, 10**12])
def test_bad_position_is_400(client: httpx.Client, key: dict[str, str], position: Any) -> None:
    q = new_queue(client, key)
    t = join(client, q)
    client.post(f"/v1/queues/{q}/call-next", headers=key)
    r = client.post(
        f"/v1/tickets/{t['ticket_id']}/requeue", json={"position": position}, headers=key
    )
    assert (r.status_code, error_code(r)) == (400, "invalid_body")


def test_transfer_keeps_priority_and_the_old_token_follows(
    client: httpx.Client, key: dict[str, str]
) -> None:
    a, b = new_queue(client, key), new_queue(client, key)
    moving = join(client, a, json={"name": "Cy", "priority": 3}, headers=key)
    others = [join(client, b) for _ in range(3)]
    r = client.post(f"/v1/tickets/{moving['ticket_id']}/transfer", json={"queue": b}, headers=key)
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["queue"], moved["status"], moved["position"]) == (b, "waiting", 1)
    assert line(client, a, key) == []
    assert line(client, b, key) == [moved["ticket_id"], *(t["ticket_id"] for t in others)]
    old = client.get(f"/v1/tickets/{moving['ticket_id']}", headers=bearer(moving["token"])).json()
    assert old["status"] == "transferred" and old["to_ticket_id"] == moved["ticket_id"]
    new = client.get(f"/v1/tickets/{moved['ticket_id']}", headers=bearer(old["token"])).json()
    assert (new["status"], new["position"], new["priority"], new["name"]) == ("waiting", 1, 3, "Cy")
    # finished now: a second transfer is refused; a position puts it where asked
    r = client.post(f"/v1/tickets/{moving['ticket_id']}/transfer", json={"queue": b}, headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_finished")
    r = client.post(
        f"/v1/tickets/{others[2]['ticket_id']}/transfer",
        json={"queue": a, "position": 5},
        headers=key,
    )
    assert r.json()["position"] == 1


def test_transfer_refusals(
    client: httpx.Client, key: dict[str, str], shared_server: SharedServer
) -> None:
    a, b = new_queue(client, key), new_queue(client, key)
    foreign = f"f-{secrets.token_hex(4)}"
    other = staff(shared_server.other_key)
    assert client.put(f"/v1/queues/{foreign}", json={}, headers=other).status_code == 201
    t = join(client, a)
    url = f"/v1/tickets/{t['ticket_id']}/transfer"
    cases = [
        ({"queue": foreign}, 403, "forbidden"),
        ({"queue": "no-such-queue-x"}, 404, "queue_not_found"),
        ({"queue": a}, 400, "invalid_body"),
        ({"queue": "Bad Slug"}, 400, "invalid_body"),
        ({}, 400, "invalid_body"),
        ({"queue": b, "position": 0}, 400, "invalid_body"),
    ]
    for body, status, code in cases:
        r = client.post(url, json=body, headers=key)
        assert (r.status_code, error_code(r)) == (status, code), body
    client.post(f"/v1/queues/{b}/close", headers=key)
    r = client.post(url, json={"queue": b}, headers=key)
    assert (r.status_code, error_code(r)) == (409, "queue_closed")
    assert line(client, a, key) == [t["ticket_id"]]  # nothing moved
    r = client.post(url, json={"queue": b}, headers=other)
    assert (r.status_code, error_code(r)) == (403, "forbidden")


def test_settings_show_in_the_summary_and_max_waiting_holds(
    client: httpx.Client, key: dict[str, str]
) -> None:
    hours = {"tz": "Europe/Paris", "weekly": {"mon": [["09:00", "17:00"]]}, "at_close": "clear"}
    q = new_queue(client, key, max_waiting=2, board_names=True, notify_ahead=5, hours=hours)
    summary = client.get(f"/v1/queues/{q}").json()
    assert summary["max_waiting"] == 2 and summary["board_names"] is True
    assert summary["notify_ahead"] == 5 and summary["hours"] == hours
    assert summary["channels"] == {"push": True, "email": True, "sms": False}
    join(client, q)
    join(client, q)
    r = client.post(f"/v1/queues/{q}/tickets")
    assert (r.status_code, error_code(r)) == (409, "queue_full")
    r = client.put(
        f"/v1/queues/{q}", json={"max_waiting": None, "channels": {"sms": True}}, headers=key
    )
    assert r.status_code == 200 and r.json()["max_waiting"] is None
    assert r.json()["channels"] == {"push": True, "email": True, "sms": True}
    join(client, q)


@pytest.mark.parametrize(
    "body",
    [
        {"max_waiting": 0},
        {"max_waiting": "5"},
        {"max_waiting": 10**9},
        {"board_names": "yes"},
        {"notify_ahead": -1},
        {"channels": {"fax": True}},
        {"channels": {"push": 1}},
        {"hours": {"tz": "Nowhere/City", "weekly": {}}},
        {"hours": {"tz": "UTC", "weekly": {"mon": [["18:00", "09:00"]]}}},
        {"hours": "9-5"},
    ],
)
def test_bad_settings_are_400_and_change_nothing(
    client: httpx.Client, key: dict[str, str], body: Any
) -> None:
    q = new_queue(client, key)
    r = client.put(f"/v1/queues/{q}", json={"name": "Renamed", **body}, headers=key)
    assert (r.status_code, error_code(r)) == (400, "invalid_body"), r.text
    assert client.get(f"/v1/queues/{q}").json()["name"] == "Desk"


def test_shaping_routes_need_the_owning_venues_key(
    client: httpx.Client, key: dict[str, str], shared_server: SharedServer
) -> None:
    q = new_queue(client, key)
    t = join(client, q)
    tid = t["ticket_id"]
    for headers, status in ((staff(shared_server.other_key), 403), ({}, 401)):
        for path in ("remove", "recall", "requeue", "transfer"):
            r = client.post(f"/v1/tickets/{tid}/{path}", json={"queue": q}, headers=headers)
            assert r.status_code == status, path
        r = client.post(f"/v1/queues/{q}/remove", json={"all": True}, headers=headers)
        assert r.status_code == status
    for bad in ("nope", "x.0", f"{q}.999"):
        r = client.post(f"/v1/tickets/{bad}/remove", headers=key)
        assert (r.status_code, error_code(r)) == (404, "ticket_not_found"), bad
    assert line(client, q, key) == [tid]
