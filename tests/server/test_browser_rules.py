"""Browser rules and idempotency against a real server: JSON-only bodies and the Origin check
for requests that carry `Origin`, and keys bound to the request they first answered."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import SharedServer


@pytest.fixture
def client(shared_server: SharedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


@pytest.fixture
def queue(client: httpx.Client, shared_server: SharedServer) -> str:
    slug = f"b-{secrets.token_hex(4)}"
    r = client.put(f"/v1/queues/{slug}", json={}, headers=staff(shared_server.key))
    assert r.status_code == 201, r.text
    return slug


def staff(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def own(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def new_key() -> str:
    return secrets.token_hex(12)


def test_a_browser_text_plain_join_gets_415(client: httpx.Client, queue: str) -> None:
    headers = {"Origin": own(client), "Content-Type": "text/plain"}
    r = client.post(f"/v1/queues/{queue}/tickets", content=b'{"name": "x"}', headers=headers)
    assert error_of(r) == (415, "unsupported_media_type")
    assert client.get(f"/v1/queues/{queue}").json()["waiting"] == 0
    # Without Origin (curl, servers) v1's rules hold: the body is read as JSON.
    plain = client.post(f"/v1/queues/{queue}/tickets", content=b"{}", headers={"Content-Type": ""})
    assert plain.status_code == 201


def test_a_foreign_origin_gets_403_and_reads_stay_open(client: httpx.Client, queue: str) -> None:
    foreign = {"Origin": "https://evil.example", "Content-Type": "application/json"}
    r = client.post(f"/v1/queues/{queue}/tickets", json={}, headers=foreign)
    assert error_of(r) == (403, "forbidden_origin")
    assert client.get(f"/v1/queues/{queue}", headers=foreign).status_code == 200
    assert client.get(f"/v1/queues/{queue}").json()["waiting"] == 0
    mine = {"Origin": own(client), "Content-Type": "application/json; charset=utf-8"}
    assert client.post(f"/v1/queues/{queue}/tickets", json={}, headers=mine).status_code == 201


def test_precedence_is_413_then_415_then_400(client: httpx.Client, queue: str) -> None:
    url = f"/v1/queues/{queue}/tickets"
    browser_text = {"Origin": own(client), "Content-Type": "text/plain"}
    browser_json = {"Origin": own(client), "Content-Type": "application/json"}
    big = b"x" * (65 * 1024)
    assert error_of(client.post(url, content=big, headers=browser_text))[0] == 413
    assert error_of(client.post(url, content=b"{bad", headers=browser_text))[0] == 415
    assert error_of(client.post(url, content=b"{bad", headers=browser_json)) == (
        400,
        "invalid_json",
    )


def test_a_replayed_key_with_another_body_gets_422_and_no_token(
    client: httpx.Client, queue: str
) -> None:
    key = {"Idempotency-Key": new_key()}
    first = client.post(f"/v1/queues/{queue}/tickets", json={"name": "Ann"}, headers=key)
    assert first.status_code == 201
    same = client.post(f"/v1/queues/{queue}/tickets", json={"name": "Ann"}, headers=key)
    assert same.json() == first.json()
    other = client.post(f"/v1/queues/{queue}/tickets", json={"name": "Eve"}, headers=key)
    assert error_of(other) == (422, "idempotency_key_reused")
    assert "token" not in other.text and first.json()["token"] not in other.text
    assert client.get(f"/v1/queues/{queue}").json()["waiting"] == 1


def test_a_key_is_bound_to_path_and_credential(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    auth = staff(shared_server.key)
    t = client.post(f"/v1/queues/{queue}/tickets", json={}).json()
    key = {"Idempotency-Key": "k1"}
    first = client.post(f"/v1/queues/{queue}/call-next", json={}, headers={**auth, **key})
    assert first.status_code == 200 and first.json()["ticket_id"] == t["ticket_id"]
    by_stranger = client.post(
        f"/v1/queues/{queue}/call-next", json={}, headers={**staff(shared_server.other_key), **key}
    )
    assert by_stranger.status_code in (403, 422)  # never the first answer
    assert t["ticket_id"] not in by_stranger.text
    served_key = {"Idempotency-Key": "k2"}
    url = f"/v1/tickets/{t['ticket_id']}/served"
    assert client.post(url, headers={**auth, **served_key}).status_code == 200
    elsewhere = client.post(f"/v1/queues/{queue}/pause", headers={**auth, **served_key})
    assert error_of(elsewhere) == (422, "idempotency_key_reused")


@pytest.mark.parametrize(
    "key", ["short", "has space-in-it-0123", "key/with/slashes-0123", "x" * 256]
)
def test_public_join_keys_are_long_and_plain(client: httpx.Client, queue: str, key: str) -> None:
    r = client.post(f"/v1/queues/{queue}/tickets", json={}, headers={"Idempotency-Key": key})
    assert error_of(r) == (400, "invalid_idempotency_key")


def test_a_staff_join_may_use_a_short_key(
    client: httpx.Client, queue: str, shared_server: SharedServer
) -> None:
    headers = {**staff(shared_server.key), "Idempotency-Key": "s1"}
    r = client.post(f"/v1/queues/{queue}/tickets", json={}, headers=headers)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "query",
    [
        "/events?after_seq=99999999999999999999",
        "/events?after_seq=-1",
        "/events?limit=0",
        "/events?limit=" + "9" * 5000,
        "/stats?since=99999999999999",
        "/stats?until=-99999999999999",
        "/stats?since=1e400",
        "/stats?since=0001-01-01T00:00:00%2B14:00",
        "/stats?until=9999-12-31T23:59:59-14:00",
    ],
)
def test_query_values_out_of_range_are_400(
    client: httpx.Client, queue: str, shared_server: SharedServer, query: str
) -> None:
    r = client.get(f"/v1/queues/{queue}{query}", headers=staff(shared_server.key))
    assert error_of(r) == (400, "invalid_query")
