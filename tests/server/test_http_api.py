"""The HTTP contract (docs/protocol.md) against a real server process, including bad input."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SharedServer


@pytest.fixture
def client(shared_server: SharedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


def staff(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def queue(client: httpx.Client, shared_server: SharedServer) -> str:
    slug = f"q-{secrets.token_hex(4)}"
    r = client.put(
        f"/v1/queues/{slug}", json={"name": "Front desk"}, headers=staff(shared_server.key)
    )
    assert r.status_code == 201, r.text
    return slug


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    assert isinstance(r.json()["error"]["message"], str)
    return code


def join(client: httpx.Client, queue: str, **body: object) -> dict[str, object]:
    r = client.post(f"/v1/queues/{queue}/tickets", json=body)
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


# -- service --------------------------------------------------------------------------------------


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["redis"] is True and r.json()["postgres"] is True


def test_unknown_route_and_method_are_json(client: httpx.Client, queue: str) -> None:
    r = client.get("/v1/nothing")
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = client.patch(f"/v1/queues/{queue}")
    assert (r.status_code, error_code(r)) == (405, "method_not_allowed")


# -- customers ------------------------------------------------------------------------------------


def test_join_read_leave(client: httpx.Client, queue: str) -> None:
    first = join(client, queue)
    second = join(client, queue, name="Ann")
    assert {k: first[k] for k in ("queue", "status", "position")} == {
        "queue": queue,
        "status": "waiting",
        "position": 1,
    }
    assert second["position"] == 2 and isinstance(second["token"], str)
    r = client.get(f"/v1/tickets/{second['ticket_id']}", headers=bearer(str(second["token"])))
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("ticket_id", "queue", "status", "position")} == {
        "ticket_id": second["ticket_id"],
        "queue": queue,
        "status": "waiting",
        "position": 2,
    }
    r = client.delete(f"/v1/tickets/{first['ticket_id']}", headers=bearer(str(first["token"])))
    assert r.status_code == 200 and r.json() == {"ticket_id": first["ticket_id"], "status": "left"}
    r = client.get(f"/v1/tickets/{second['ticket_id']}", headers=bearer(str(second["token"])))
    assert r.json()["position"] == 1
    r = client.get(f"/v1/tickets/{first['ticket_id']}", headers=bearer(str(first["token"])))
    assert r.json()["status"] == "left" and r.json()["position"] is None
    r = client.delete(f"/v1/tickets/{first['ticket_id']}", headers=bearer(str(first["token"])))
    assert (r.status_code, error_code(r)) == (409, "ticket_finished")


def test_join_accepts_empty_body(client: httpx.Client, queue: str) -> None:
    r = client.post(f"/v1/queues/{queue}/tickets")
    assert r.status_code == 201


def test_queue_summary(client: httpx.Client, queue: str) -> None:
    join(client, queue)
    r = client.get(f"/v1/queues/{queue}")
    assert r.json() == {
        "queue": queue,
        "name": "Front desk",
        "state": "open",
        "waiting": 1,
        "archived": False,
        "max_waiting": None,
        "board_names": False,
        "notify_ahead": 3,
        "channels": {"push": True, "email": True, "sms": False},
        "hours": None,
    }


@pytest.mark.parametrize("slug", ["no-such-queue", "Bad_Slug", "-x", "a" * 70])
def test_unknown_or_malformed_queue_is_404(client: httpx.Client, slug: str) -> None:
    for r in (client.get(f"/v1/queues/{slug}"), client.post(f"/v1/queues/{slug}/tickets", json={})):
        assert (r.status_code, error_code(r)) == (404, "queue_not_found")


def test_join_idempotency(client: httpx.Client, queue: str) -> None:
    headers = {"Idempotency-Key": "abc-123-join-key-0001"}
    a = client.post(f"/v1/queues/{queue}/tickets", json={"name": "Bo"}, headers=headers)
    b = client.post(f"/v1/queues/{queue}/tickets", json={"name": "Bo"}, headers=headers)
    c = client.post(
        f"/v1/queues/{queue}/tickets", json={}, headers={"Idempotency-Key": "other-join-key-01"}
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json() == b.json()
    assert c.json()["ticket_id"] != a.json()["ticket_id"]
    assert client.get(f"/v1/queues/{queue}").json()["waiting"] == 2


def test_concurrent_joins_with_one_key_make_one_ticket(
    shared_server: SharedServer, queue: str
) -> None:
    async def go() -> set[str]:
        async with httpx.AsyncClient(base_url=shared_server.url) as c:
            rs = await asyncio.gather(
                *(
                    c.post(
                        f"/v1/queues/{queue}/tickets",
                        headers={"Idempotency-Key": "same-join-key-0001"},
                    )
                    for _ in range(10)
                )
            )
        return {r.json()["ticket_id"] for r in rs}

    assert len(asyncio.run(go())) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b'{"name": 5}', "invalid_body"),
        (b'{"name": ["a"]}', "invalid_body"),
        (b'{"name": "' + b"x" * 500 + b'"}', "invalid_body"),
        (b'{"name": "a\\u0000b"}', "invalid_body"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
def test_join_bad_bodies(client: httpx.Client, queue: str, body: bytes, code: str) -> None:
    r = client.post(f"/v1/queues/{queue}/tickets", content=body)
    assert (r.status_code, error_code(r)) == (400, code)
    assert client.get(f"/v1/queues/{queue}").json()["waiting"] == 0


def test_oversized_bodies_are_413(client: httpx.Client, queue: str) -> None:
    big = b'{"name": "' + b"x" * (70 * 1024) + b'"}'
    r = client.post(f"/v1/queues/{queue}/tickets", content=big)
    assert (r.status_code, error_code(r)) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(70):
            yield b" " * 1024

    r = client.post(f"/v1/queues/{queue}/tickets", content=chunks())
    assert (r.status_code, error_code(r)) == (413, "payload_too_large")


def test_bad_idempotency_key(client: httpx.Client, queue: str) -> None:
    r = client.post(f"/v1/queues/{queue}/tickets", headers={"Idempotency-Key": "x" * 300})
    assert (r.status_code, error_code(r)) == (400, "invalid_idempotency_key")


def test_closed_queue_refuses_joins(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    client.post(f"/v1/queues/{queue}/close", headers=staff(shared_server.key))
    r = client.post(f"/v1/queues/{queue}/tickets", json={})
    assert (r.status_code, error_code(r)) == (409, "queue_closed")


def test_ticket_tokens(client: httpx.Client, queue: str) -> None:
    a, b = join(client, queue), join(client, queue)
    url = f"/v1/tickets/{a['ticket_id']}"
    token = str(a["token"])
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        bearer("not-a-token"),
        bearer(forged),
        bearer(str(b["token"])),  # another ticket's token
        bearer("x" * 5000),
    ):
        for r in (client.get(url, headers=headers), client.delete(url, headers=headers)):
            assert (r.status_code, error_code(r)) == (401, "unauthorized"), headers
    assert client.get(url, headers=bearer(token)).json()["status"] == "waiting"


def test_malformed_ticket_ids(client: httpx.Client, queue: str) -> None:
    a = join(client, queue)
    for tid in ("nope", f"{queue}.0", f"{queue}.99999999999999999999", "a.b.c"):
        r = client.get(f"/v1/tickets/{tid}", headers=bearer(str(a["token"])))
        assert (r.status_code, error_code(r)) == (401, "unauthorized")


# -- staff ----------------------------------------------------------------------------------------


def test_put_queue(client: httpx.Client, shared_server: SharedServer) -> None:
    slug = f"p-{secrets.token_hex(4)}"
    key = staff(shared_server.key)
    r = client.put(f"/v1/queues/{slug}", json={"name": "A"}, headers=key)
    assert r.status_code == 201
    summary = {k: r.json()[k] for k in ("queue", "name", "state", "waiting")}
    assert summary == {"queue": slug, "name": "A", "state": "open", "waiting": 0}
    r = client.put(f"/v1/queues/{slug}", json={"name": "B"}, headers=key)
    assert (r.status_code, r.json()["name"]) == (200, "B")
    assert client.get(f"/v1/queues/{slug}").json()["name"] == "B"
    r = client.put(f"/v1/queues/{slug}", json={"name": "C"}, headers=staff(shared_server.other_key))
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = client.put("/v1/queues/Bad_Slug", json={"name": "x"}, headers=key)
    assert r.status_code == 400
    r = client.put(f"/v1/queues/{slug}", json={"name": 3}, headers=key)
    assert r.status_code == 400
    r = client.put(f"/v1/queues/{slug}", content=b"{", headers=key)
    assert (r.status_code, error_code(r)) == (400, "invalid_json")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer vqk_0123456789abcdef_" + "A" * 43},
        {"Authorization": "Token abc"},
    ],
)
def test_staff_calls_need_a_key(client: httpx.Client, queue: str, headers: dict[str, str]) -> None:
    t = join(client, queue)
    calls = [
        client.put(f"/v1/queues/{queue}", json={"name": "x"}, headers=headers),
        client.post(f"/v1/queues/{queue}/call-next", headers=headers),
        client.post(f"/v1/tickets/{t['ticket_id']}/served", headers=headers),
        client.post(f"/v1/tickets/{t['ticket_id']}/no-show", headers=headers),
        client.post(f"/v1/queues/{queue}/pause", headers=headers),
        client.get(f"/v1/queues/{queue}/tickets", headers=headers),
    ]
    for r in calls:
        assert (r.status_code, error_code(r)) == (401, "unauthorized")


def test_other_venue_is_forbidden(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    t = join(client, queue)
    other = staff(shared_server.other_key)
    calls = [
        client.post(f"/v1/queues/{queue}/call-next", headers=other),
        client.post(f"/v1/tickets/{t['ticket_id']}/served", headers=other),
        client.post(f"/v1/tickets/{t['ticket_id']}/no-show", headers=other),
        *(
            client.post(f"/v1/queues/{queue}/{a}", headers=other)
            for a in ("pause", "resume", "close", "open")
        ),
        client.get(f"/v1/queues/{queue}/tickets", headers=other),
    ]
    for r in calls:
        assert (r.status_code, error_code(r)) == (403, "forbidden")
    assert (
        client.get(f"/v1/queues/{queue}").json().items()
        >= {
            "queue": queue,
            "name": "Front desk",
            "state": "open",
            "waiting": 1,
        }.items()
    )


def test_call_next_served_no_show(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    key = staff(shared_server.key)
    a, b, c = join(client, queue, name="Ann"), join(client, queue), join(client, queue)
    r = client.post(f"/v1/queues/{queue}/call-next", json={"counter": "desk 3"}, headers=key)
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("ticket_id", "name", "counter", "status")} == {
        "ticket_id": a["ticket_id"],
        "name": "Ann",
        "counter": "desk 3",
        "status": "called",
    }
    r = client.post(f"/v1/tickets/{b['ticket_id']}/served", headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_not_called")
    r = client.post(f"/v1/tickets/{a['ticket_id']}/served", headers=key)
    assert r.json() == {"ticket_id": a["ticket_id"], "status": "served"}
    r = client.post(f"/v1/tickets/{a['ticket_id']}/no-show", headers=key)
    assert (r.status_code, error_code(r)) == (409, "ticket_finished")
    assert (
        client.post(f"/v1/queues/{queue}/call-next", headers=key).json()["ticket_id"]
        == b["ticket_id"]
    )
    r = client.post(f"/v1/tickets/{b['ticket_id']}/no-show", headers=key)
    assert r.json() == {"ticket_id": b["ticket_id"], "status": "no_show"}
    r = client.get(f"/v1/tickets/{c['ticket_id']}", headers=bearer(str(c["token"])))
    assert r.json()["position"] == 1
    client.post(f"/v1/queues/{queue}/call-next", headers=key)
    r = client.post(f"/v1/queues/{queue}/call-next", headers=key)
    assert r.status_code == 204 and r.content == b""


def test_unknown_tickets_for_staff(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    key = staff(shared_server.key)
    for tid in (f"{queue}.999", "nope", "unknown-queue.1"):
        r = client.post(f"/v1/tickets/{tid}/served", headers=key)
        assert (r.status_code, error_code(r)) == (404, "ticket_not_found"), tid


def test_called_ticket_can_leave(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    a = join(client, queue)
    client.post(f"/v1/queues/{queue}/call-next", headers=staff(shared_server.key))
    r = client.delete(f"/v1/tickets/{a['ticket_id']}", headers=bearer(str(a["token"])))
    assert r.json()["status"] == "left"


def test_pause_resume_close_open(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    key = staff(shared_server.key)

    def act(action: str) -> httpx.Response:
        return client.post(f"/v1/queues/{queue}/{action}", headers=key)

    join(client, queue)
    assert act("pause").json() == {
        "queue": queue,
        "name": "Front desk",
        "state": "paused",
        "waiting": 1,
    }
    r = client.post(f"/v1/queues/{queue}/call-next", headers=key)
    assert (r.status_code, error_code(r)) == (409, "queue_paused")
    assert join(client, queue)["position"] == 2  # paused: joining allowed
    assert act("resume").json()["state"] == "open"
    assert act("close").json()["state"] == "closed"
    for action in ("pause", "resume"):
        r = act(action)
        assert (r.status_code, error_code(r)) == (409, "queue_closed")
    r = client.post(f"/v1/queues/{queue}/call-next", headers=key)
    assert r.status_code == 200  # a closed queue still drains
    assert act("open").json()["state"] == "open"
    assert act("close").json()["state"] == "closed"
    assert act("close").json()["state"] == "closed"


def test_waiting_list_in_order(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    tickets = [join(client, queue, name=f"n{i}") for i in range(4)]
    client.delete(
        f"/v1/tickets/{tickets[1]['ticket_id']}", headers=bearer(str(tickets[1]["token"]))
    )
    r = client.get(f"/v1/queues/{queue}/tickets", headers=staff(shared_server.key))
    assert r.json()["queue"] == queue
    rows = [{k: row[k] for k in ("ticket_id", "name", "position")} for row in r.json()["waiting"]]
    assert rows == [
        {"ticket_id": tickets[i]["ticket_id"], "name": f"n{i}", "position": p}
        for p, i in enumerate((0, 2, 3), start=1)
    ]


def test_concurrent_call_next_never_repeats(shared_server: SharedServer, queue: str) -> None:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=shared_server.url, timeout=10) as c:
            for _ in range(15):
                await c.post(f"/v1/queues/{queue}/tickets")
            return await asyncio.gather(
                *(
                    c.post(f"/v1/queues/{queue}/call-next", headers=staff(shared_server.key))
                    for _ in range(25)
                )
            )

    responses = asyncio.run(go())
    called = [r.json()["ticket_id"] for r in responses if r.status_code == 200]
    assert len(called) == 15 and len(set(called)) == 15
    assert sorted(r.status_code for r in responses).count(204) == 10


def test_call_next_idempotency(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    join(client, queue)
    join(client, queue)
    headers = {**staff(shared_server.key), "Idempotency-Key": "call-1"}
    a = client.post(f"/v1/queues/{queue}/call-next", headers=headers)
    b = client.post(f"/v1/queues/{queue}/call-next", headers=headers)
    assert a.json() == b.json() and a.status_code == b.status_code == 200
    assert client.get(f"/v1/queues/{queue}").json()["waiting"] == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=json_values, field=st.sampled_from(["name", "counter"]))
def test_no_body_gets_a_500(shared_server: SharedServer, body: object, field: str) -> None:
    """Any JSON, as the body or as a field's value, gets a 2xx/4xx answer and never a 500."""
    with httpx.Client(base_url=shared_server.url) as c:
        key = staff(shared_server.key)
        for payload in (body, {field: body}):
            raw = json.dumps(payload).encode()
            for r in (
                c.post("/v1/queues/fuzz/tickets", content=raw),
                c.put("/v1/queues/fuzz", content=raw, headers=key),
                c.post("/v1/queues/fuzz/call-next", content=raw, headers=key),
            ):
                assert r.status_code < 500, r.text


def test_idempotency_key_replays_other_changes(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    key = staff(shared_server.key)
    t = join(client, queue)
    client.post(f"/v1/queues/{queue}/call-next", headers=key)
    url = f"/v1/tickets/{t['ticket_id']}/served"
    first = client.post(url, headers={**key, "Idempotency-Key": "srv-1"})
    again = client.post(url, headers={**key, "Idempotency-Key": "srv-1"})
    assert (first.status_code, again.status_code) == (200, 200) and first.json() == again.json()
    fresh = client.post(url, headers={**key, "Idempotency-Key": "srv-2"})
    assert (fresh.status_code, error_code(fresh)) == (409, "ticket_finished")
    # Someone else's credential with the same key does not get the stored answer.
    stranger = client.post(
        url, headers={**staff(shared_server.other_key), "Idempotency-Key": "srv-1"}
    )
    assert (stranger.status_code, error_code(stranger)) == (422, "idempotency_key_reused")
    for _ in range(2):
        r = client.post(f"/v1/queues/{queue}/close", headers={**key, "Idempotency-Key": "close-1"})
        assert r.status_code == 200 and r.json()["state"] == "closed"
